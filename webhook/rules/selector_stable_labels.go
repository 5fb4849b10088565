package rules

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// selectorStableLabels warns, on create, about selector labels whose values
// change between releases: the selector can never change, so the next release
// would have to change template labels the selector still requires.
func selectorStableLabels(in *Input) []Finding {
	sel := in.Object.Spec.Selector
	if in.Operation != Create || sel == nil {
		return nil
	}
	unstable := in.Policy.Rules.SelectorStableLabels.UnstableLabels
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
		Rule:  policy.SelectorStableLabels,
		Field: path,
		Message: fmt.Sprintf("the selector uses label %s, whose value changes between releases, and a selector can never change; "+
			"select on labels that stay fixed, such as app.kubernetes.io/name and app.kubernetes.io/instance", key),
	}
}
