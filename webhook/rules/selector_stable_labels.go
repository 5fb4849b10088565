package rules

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// SelectorStableLabels is the name of the rule that finds selector labels
// whose values change between releases.
const SelectorStableLabels = "selector-stable-labels"

// StableLabelsOptions configures selector-stable-labels.
type StableLabelsOptions struct {
	// UnstableLabels are label keys whose values change between releases and
	// so must never appear in a selector, which cannot change later.
	UnstableLabels []string `json:"unstableLabels"`
}

// Validate implements policy.Options: each entry must be a label key.
func (o *StableLabelsOptions) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, k := range o.UnstableLabels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(path.Child("unstableLabels").Index(i), k, msg))
		}
	}
	return errs
}

// defaultUnstableLabels change with every release of a chart or an app, which
// makes them unfit for a selector that can never change.
var defaultUnstableLabels = []string{
	"helm.sh/chart",
	"chart",
	"app.kubernetes.io/version",
	"version",
	"release",
	"heritage",
	"pod-template-hash",
	"controller-revision-hash",
	"pod-template-generation",
}

// SelectorStableLabels declares the rule.
func (builtin) SelectorStableLabels() Rule {
	return Rule{
		Spec: policy.Spec{Name: SelectorStableLabels, Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options {
				return &StableLabelsOptions{UnstableLabels: slices.Clone(defaultUnstableLabels)}
			}},
		Summary: "on CREATE, the selector uses no label that changes between releases",
		Description: "A selector can never change, so a selector label whose value changes with every release (a chart version, an app version) " +
			"makes the next release impossible without deleting the DaemonSet. The rule finds such labels in a new DaemonSet's selector; " +
			"unstableLabels lists the keys, by default the usual chart and version labels.",
		Check: infallible(selectorStableLabels),
	}
}

// selectorStableLabels warns, on create, about selector labels whose values
// change between releases: the selector can never change, so the next release
// would have to change template labels the selector still requires.
func selectorStableLabels(in *Input) []Finding {
	sel := in.Object.Spec.Selector
	if in.Operation != Create || sel == nil {
		return nil
	}
	unstable := policy.OptionsOf[*StableLabelsOptions](in.Policy, SelectorStableLabels).UnstableLabels
	path := field.NewPath("spec", "selector")
	var out []Finding
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		if slices.Contains(unstable, k) {
			out = append(out, stableLabelsFinding(path.Child("matchLabels").Key(k), k))
		}
	}
	for i, expr := range sel.MatchExpressions {
		if slices.Contains(unstable, expr.Key) {
			out = append(out, stableLabelsFinding(path.Child("matchExpressions").Index(i).Child("key"), expr.Key))
		}
	}
	return out
}

func stableLabelsFinding(path *field.Path, key string) Finding {
	return Finding{
		Rule:  SelectorStableLabels,
		Field: path,
		Message: fmt.Sprintf("the selector uses label %s, whose value changes between releases, and a selector can never change; "+
			"select on labels that stay fixed, such as app.kubernetes.io/name and app.kubernetes.io/instance", key),
	}
}
