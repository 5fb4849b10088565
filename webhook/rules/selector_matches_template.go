package rules

import (
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

const fixTemplateLabels = "the DaemonSet would not own its own pods; make spec.template.metadata.labels satisfy the selector"

// SelectorMatchesTemplate is the name of the rule that refuses a selector
// that does not select the template's labels.
const SelectorMatchesTemplate = "selector-matches-template"

// SelectorMatchesTemplate declares the rule.
func (builtin) SelectorMatchesTemplate() Rule {
	return Rule{
		Spec:    policy.Spec{Name: SelectorMatchesTemplate, Kind: policy.Validating, Default: policy.Deny},
		Summary: "the selector is not empty and selects `template.metadata.labels`",
		Description: "A DaemonSet whose selector does not select its own pod template's labels would not own its pods. " +
			"The rule names each failing matchLabels entry or matchExpressions requirement, and an empty selector. " +
			"The API server refuses both too; the rule gives the fix, and speaks in check and audit, before manifests reach a cluster.",
		Check: infallible(selectorMatchesTemplate),
	}
}

// selectorMatchesTemplate denies an empty selector and a selector that does
// not select the template's labels, naming each requirement that fails.
func selectorMatchesTemplate(in *Input) []Finding {
	path := field.NewPath("spec", "selector")
	sel := in.Object.Spec.Selector
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return []Finding{{Rule: SelectorMatchesTemplate, Field: path,
			Message: "the selector is empty; set spec.selector.matchLabels to labels that identify this DaemonSet's pods, e.g. app.kubernetes.io/name: " + in.Object.Name}}
	}
	podLabels := labels.Set(in.Object.Spec.Template.Labels)
	var out []Finding
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		want := sel.MatchLabels[k]
		got, ok := podLabels[k]
		var msg string
		_, invalid := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{k: want}})
		switch {
		case invalid != nil:
			msg = fmt.Sprintf("the selector label is invalid: %v", invalid)
		case !ok:
			msg = fmt.Sprintf("the selector requires label %s=%s, which the pod template lacks; %s", k, want, fixTemplateLabels)
		case got != want:
			msg = fmt.Sprintf("the selector requires label %s=%s, but the pod template has %s=%s; %s", k, want, k, got, fixTemplateLabels)
		default:
			continue
		}
		out = append(out, Finding{Rule: SelectorMatchesTemplate, Field: path.Child("matchLabels").Key(k), Message: msg})
	}
	for i, expr := range sel.MatchExpressions {
		p := path.Child("matchExpressions").Index(i)
		s, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr}})
		if err != nil {
			out = append(out, Finding{Rule: SelectorMatchesTemplate, Field: p, Message: fmt.Sprintf("the selector requirement is invalid: %v", err)})
			continue
		}
		if s.Matches(podLabels) {
			continue
		}
		msg := fmt.Sprintf("the selector requires %q, which the pod template's labels do not satisfy", s.String())
		if v, ok := podLabels[expr.Key]; ok {
			msg = fmt.Sprintf("the selector requires %q, but the pod template has %s=%s", s.String(), expr.Key, v)
		}
		out = append(out, Finding{Rule: SelectorMatchesTemplate, Field: p, Message: msg + "; " + fixTemplateLabels})
	}
	return out
}
