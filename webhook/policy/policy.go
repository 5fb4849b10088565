// Package policy defines the daemonset-guard policy file: what each rule does
// when it fires, its options, and which namespaces are exempt from which
// rules. It knows no rule by name: the rules declare themselves to it through
// a Catalog, so that the file's schema, its defaults and its validation all
// come from the rules' own declarations.
package policy

import (
	"encoding/json"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// APIVersion and Kind identify a policy file.
const (
	APIVersion = "daemonset-guard.io/v1alpha1"
	Kind       = "Policy"
)

// Action is what a rule does when it fires.
type Action string

// Validation rules take Deny, Warn or Off; mutation rules take Apply or Off.
const (
	Deny  Action = "deny"
	Warn  Action = "warn"
	Off   Action = "off"
	Apply Action = "apply"
)

// RuleKind says which webhook runs a rule.
type RuleKind string

// A rule either judges the final object or changes it.
const (
	Validating RuleKind = "validating"
	Mutating   RuleKind = "mutating"
)

// Actions returns the actions a rule of this kind may be given.
func (k RuleKind) Actions() []Action {
	if k == Mutating {
		return []Action{Apply, Off}
	}
	return []Action{Deny, Warn, Off}
}

// Spec is what a policy needs to know of a rule: its name, its kind, its
// default action and its options. The rest of the rule (what it checks or
// changes, its description) lives beside it in package rules.
type Spec struct {
	// Name is stable: it appears in messages, warnings, metrics, the skip
	// annotation and the policy file.
	Name string
	Kind RuleKind
	// Default is the action of a policy that does not configure the rule.
	Default Action
	// Options returns the rule's options with their defaults; nil for a rule
	// without options.
	Options func() Options
	// Coherent, when set, checks the rule's configuration against the rest
	// of a policy whose fields are each valid: it refuses a policy whose
	// rules would contradict each other.
	Coherent func(p *Policy) field.ErrorList
}

// Options are one rule's own settings, decoded strictly from the fields of
// its entry in the policy file beside action and onError.
type Options interface {
	// Validate returns every invalid field, with path as the rule's entry.
	Validate(path *field.Path) field.ErrorList
}

// Catalog is the set of rules a policy may name.
type Catalog interface {
	Specs() []Spec
}

// Policy is the content of the policy file.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Rules configures each rule of the catalog, by name; after Parse or
	// Default every rule of the catalog has an entry.
	Rules map[string]*RuleConfig `json:"rules"`
	// Exemptions switch rules off for whole namespaces.
	Exemptions []Exemption `json:"exemptions,omitempty"`
	// SkipAnnotation says which rules a DaemonSet's skip annotation may
	// switch off; nil means every rule whose action is not deny.
	SkipAnnotation *SkipAnnotation `json:"skipAnnotation,omitempty"`
	// Cluster says what the cluster does to pods that the rules cannot see
	// from the API.
	Cluster Cluster `json:"cluster,omitzero"`
}

// Admission plugins of the API server that change daemon pods after the
// DaemonSet controller has decided where they go.
const (
	// PodNodeSelector merges a namespace's
	// scheduler.alpha.kubernetes.io/node-selector into its pods'.
	PodNodeSelector = "PodNodeSelector"
	// PodTolerationRestriction adds a namespace's default tolerations to
	// its pods and refuses pods with tolerations outside its whitelist.
	PodTolerationRestriction = "PodTolerationRestriction"
)

// Cluster describes the cluster around the rules.
type Cluster struct {
	// AdmissionPlugins lists the API server's admission plugins, among
	// PodNodeSelector and PodTolerationRestriction, that the cluster
	// enables (the API server's --enable-admission-plugins).
	AdmissionPlugins []string `json:"admissionPlugins,omitempty"`
}

// Runs reports whether the cluster enables the admission plugin.
func (c Cluster) Runs(plugin string) bool { return slices.Contains(c.AdmissionPlugins, plugin) }

// SkipAnnotation says which rules the skip annotation may switch off.
type SkipAnnotation struct {
	// Rules are the rules the annotation may skip; "*" allows every rule.
	Rules []string `json:"rules"`
}

// Skippable reports whether a DaemonSet's skip annotation may switch the
// named rule off. Anyone who may write a DaemonSet may annotate it, so by
// default no rule at deny can be skipped: a denial is the platform team's
// word, an opt-out the author's.
func (p *Policy) Skippable(rule string) bool {
	if p.SkipAnnotation == nil {
		return p.Action(rule) != Deny
	}
	return slices.Contains(p.SkipAnnotation.Rules, "*") || slices.Contains(p.SkipAnnotation.Rules, rule)
}

// RuleConfig is the configuration of one rule.
type RuleConfig struct {
	Action Action `json:"action,omitempty"`
	// OnError is the answer when the rule cannot be evaluated (it failed or
	// would cost more than a request may take): allow, the default, admits
	// with a warning that names the rule; deny refuses.
	OnError OnError `json:"onError,omitempty"`
	// Options are the rule's own settings; nil for a rule without options.
	Options Options `json:"-"`
}

// MarshalJSON writes the options beside action and onError, as the policy
// file has them.
func (c RuleConfig) MarshalJSON() ([]byte, error) {
	fields := map[string]any{}
	if c.Options != nil {
		data, err := json.Marshal(c.Options)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &fields); err != nil {
			return nil, fmt.Errorf("options must marshal to a JSON object: %w", err)
		}
	}
	fields["action"], fields["onError"] = c.Action, c.OnError
	return json.Marshal(fields)
}

// OnError is what a rule that cannot be evaluated answers.
type OnError string

// A rule that cannot be evaluated allows with a warning, or denies.
const (
	OnErrorAllow OnError = "allow"
	OnErrorDeny  OnError = "deny"
)

// Exemption switches rules off in the listed namespaces.
type Exemption struct {
	Namespaces []string `json:"namespaces"`
	Rules      []string `json:"rules"`
}

// Action returns the configured action of the named rule; Off for a rule the
// policy does not know.
func (p *Policy) Action(rule string) Action {
	if c := p.Rules[rule]; c != nil {
		return c.Action
	}
	return Off
}

// OnError returns what the named rule answers when it cannot be evaluated.
func (p *Policy) OnError(rule string) OnError {
	if c := p.Rules[rule]; c != nil && c.OnError != "" {
		return c.OnError
	}
	return OnErrorAllow
}

// OptionsOf returns the named rule's options as their type T, the zero T when
// the policy holds none of that type.
func OptionsOf[T Options](p *Policy, rule string) T {
	var zero T
	c := p.Rules[rule]
	if c == nil {
		return zero
	}
	o, ok := c.Options.(T)
	if !ok {
		return zero
	}
	return o
}

// Known reports whether the policy configures a rule of that name.
func (p *Policy) Known(rule string) bool {
	_, ok := p.Rules[rule]
	return ok
}

// Exempt reports whether the named rule is switched off in the namespace.
func (p *Policy) Exempt(namespace, rule string) bool {
	for _, e := range p.Exemptions {
		if slices.Contains(e.Namespaces, namespace) && slices.Contains(e.Rules, rule) {
			return true
		}
	}
	return false
}

// UnmarshalJSON accepts the YAML 1.1 boolean that an unquoted `off` becomes
// (sigs.k8s.io/yaml follows YAML 1.1), so that `action: off` means Off.
func (a *Action) UnmarshalJSON(data []byte) error {
	if string(data) == "false" {
		*a = Off
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("an action must be one of deny, warn, apply or off, not %s", data)
	}
	*a = Action(s)
	return nil
}
