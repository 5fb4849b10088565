package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// SelectorImmutable is the name of the rule that refuses selector changes.
const SelectorImmutable = "selector-immutable"

// SelectorImmutable declares the rule.
func (builtin) SelectorImmutable() Rule {
	return Rule{
		Spec:    policy.Spec{Name: SelectorImmutable, Kind: policy.Validating, Default: policy.Deny},
		Summary: "an UPDATE may not change `spec.selector`",
		Description: "A DaemonSet's selector can never change: the API server refuses the update. " +
			"This rule says how to get what the user wanted (delete the DaemonSet keeping its pods, then create it with the new selector). " +
			"Through a cluster the API server's own refusal comes first; the rule speaks in check, which judges a file as an update of the live object " +
			"(--kubeconfig, or a snapshot with --live-objects).",
		Check: infallible(selectorImmutable),
	}
}

// selectorImmutable denies an update that changes spec.selector. The API
// server refuses it too; this rule says how to get what the user wanted.
func selectorImmutable(in *Input) []Finding {
	if in.Operation != Update || equality.Semantic.DeepEqual(in.OldObject.Spec.Selector, in.Object.Spec.Selector) {
		return nil
	}
	return []Finding{{
		Rule:  SelectorImmutable,
		Field: field.NewPath("spec", "selector"),
		Message: fmt.Sprintf("the selector of a DaemonSet cannot change after creation; to change it, "+
			"delete the DaemonSet but keep its pods (kubectl delete daemonset %s -n %s --cascade=orphan), "+
			"then create it with the new selector: it adopts the running pods that match and replaces them by its rollout",
			in.Object.Name, in.Object.Namespace),
	}}
}
