// Package policy defines the daemonset-guard policy file: which tolerations and
// rollout defaults the mutating webhook injects, what each rule does when it
// fires, and which namespaces are exempt from which rules.
package policy

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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

// Rule names. They are stable: they appear in messages, warnings, metrics,
// the skip annotation and the policy file.
const (
	SelectorImmutable       = "selector-immutable"
	SelectorMatchesTemplate = "selector-matches-template"
	RestartPolicyAlways     = "restart-policy-always"
	TargetsNodes            = "targets-nodes"
	SelectorStableLabels    = "selector-stable-labels"
	RolloutBudget           = "rollout-budget"
	DefaultTolerations      = "default-tolerations"
	RollingUpdateDefaults   = "rolling-update-defaults"
)

// ValidationRules lists the rules of the validating webhook.
var ValidationRules = []string{SelectorImmutable, SelectorMatchesTemplate, RestartPolicyAlways, TargetsNodes, SelectorStableLabels, RolloutBudget}

// MutationRules lists the rules of the mutating webhook.
var MutationRules = []string{DefaultTolerations, RollingUpdateDefaults}

// Policy is the content of the policy file.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Mutation holds what the mutating webhook injects.
	Mutation Mutation `json:"mutation"`
	// Rules configures each rule by name.
	Rules Rules `json:"rules"`
	// Exemptions switch rules off for whole namespaces.
	Exemptions []Exemption `json:"exemptions,omitempty"`
}

// Mutation holds the defaults the mutating webhook injects.
type Mutation struct {
	// Tolerations are added to a pod template that does not already tolerate them.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// RollingUpdate holds the rollout defaults applied where the user chose none.
	RollingUpdate RollingUpdate `json:"rollingUpdate"`
}

// RollingUpdate holds the rollout defaults of rolling-update-defaults.
type RollingUpdate struct {
	// MaxUnavailable replaces the API server's default of 1; int or percentage.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// MinReadySeconds replaces the API server's default of 0.
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`
}

// Rules configures every rule. A rule missing from the file keeps its default.
type Rules struct {
	SelectorImmutable       RuleConfig          `json:"selector-immutable"`
	SelectorMatchesTemplate RuleConfig          `json:"selector-matches-template"`
	RestartPolicyAlways     RuleConfig          `json:"restart-policy-always"`
	TargetsNodes            TargetsNodesConfig  `json:"targets-nodes"`
	SelectorStableLabels    StableLabelsConfig  `json:"selector-stable-labels"`
	RolloutBudget           RolloutBudgetConfig `json:"rollout-budget"`
	DefaultTolerations      RuleConfig          `json:"default-tolerations"`
	RollingUpdateDefaults   RuleConfig          `json:"rolling-update-defaults"`
}

// RuleConfig is the configuration every rule has.
type RuleConfig struct {
	Action Action `json:"action,omitempty"`
	// OnError is the answer when the rule cannot be evaluated (it failed or
	// would cost more than a request may take): allow, the default, admits
	// with a warning that names the rule; deny refuses.
	OnError OnError `json:"onError,omitempty"`
}

// OnError is what a rule that cannot be evaluated answers.
type OnError string

// A rule that cannot be evaluated allows with a warning, or denies.
const (
	OnErrorAllow OnError = "allow"
	OnErrorDeny  OnError = "deny"
)

// TargetsNodesConfig configures targets-nodes.
type TargetsNodesConfig struct {
	RuleConfig `json:",inline"`
	// ReportCoverage also reports, as a warning, on how many nodes a
	// DaemonSet that runs somewhere would run, and why the others are left out.
	ReportCoverage bool `json:"reportCoverage,omitempty"`
}

// StableLabelsConfig configures selector-stable-labels.
type StableLabelsConfig struct {
	RuleConfig `json:",inline"`
	// UnstableLabels are label keys whose values change between releases and
	// so must never appear in a selector, which cannot change later.
	UnstableLabels []string `json:"unstableLabels,omitempty"`
}

// RolloutBudgetConfig configures rollout-budget.
type RolloutBudgetConfig struct {
	RuleConfig `json:",inline"`
	// MaxUnavailable is the largest share of the targeted nodes that one
	// rollout step may take down; int or percentage.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// Exemption switches rules off in the listed namespaces.
type Exemption struct {
	Namespaces []string `json:"namespaces"`
	Rules      []string `json:"rules"`
}

// Action returns the configured action of the named rule.
func (p *Policy) Action(rule string) Action {
	if c := p.rule(rule); c != nil {
		return c.Action
	}
	return Off
}

// OnError returns what the named rule answers when it cannot be evaluated.
func (p *Policy) OnError(rule string) OnError {
	if c := p.rule(rule); c != nil && c.OnError != "" {
		return c.OnError
	}
	return OnErrorAllow
}

// rule returns the common configuration of the named rule, nil for an
// unknown name.
func (p *Policy) rule(name string) *RuleConfig {
	switch name {
	case SelectorImmutable:
		return &p.Rules.SelectorImmutable
	case SelectorMatchesTemplate:
		return &p.Rules.SelectorMatchesTemplate
	case RestartPolicyAlways:
		return &p.Rules.RestartPolicyAlways
	case TargetsNodes:
		return &p.Rules.TargetsNodes.RuleConfig
	case SelectorStableLabels:
		return &p.Rules.SelectorStableLabels.RuleConfig
	case RolloutBudget:
		return &p.Rules.RolloutBudget.RuleConfig
	case DefaultTolerations:
		return &p.Rules.DefaultTolerations
	case RollingUpdateDefaults:
		return &p.Rules.RollingUpdateDefaults
	}
	return nil
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
