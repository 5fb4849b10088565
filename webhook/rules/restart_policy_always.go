package rules

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// RestartPolicyAlways is the name of the rule that refuses a restartPolicy
// other than Always.
const RestartPolicyAlways = "restart-policy-always"

// RestartPolicyAlways declares the rule.
func (builtin) RestartPolicyAlways() Rule {
	return Rule{
		Spec:    policy.Spec{Name: RestartPolicyAlways, Kind: policy.Validating, Default: policy.Deny},
		Summary: "the template's `restartPolicy` is `Always`",
		Description: "A daemon runs until its node goes away, so its pods must restart whenever they stop. " +
			"The API server refuses any other restartPolicy for a DaemonSet; the rule says so in check and audit, before a manifest reaches a cluster.",
		Check: infallible(restartPolicyAlways),
	}
}

// restartPolicyAlways denies a template whose pods would stop for good:
// a daemon runs until its node goes away. Empty means the API server's
// default, Always.
func restartPolicyAlways(in *Input) []Finding {
	rp := in.Object.Spec.Template.Spec.RestartPolicy
	if rp == "" || rp == corev1.RestartPolicyAlways {
		return nil
	}
	return []Finding{{
		Rule:    RestartPolicyAlways,
		Field:   field.NewPath("spec", "template", "spec", "restartPolicy"),
		Message: fmt.Sprintf("restartPolicy is %s, but daemon pods must restart whenever they stop; set it to Always or leave it out", rp),
	}}
}
