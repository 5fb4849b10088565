package rules

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// restartPolicyAlways denies a template whose pods would stop for good:
// a daemon runs until its node goes away. Empty means the API server's
// default, Always.
func restartPolicyAlways(in *Input) []Finding {
	rp := in.Object.Spec.Template.Spec.RestartPolicy
	if rp == "" || rp == corev1.RestartPolicyAlways {
		return nil
	}
	return []Finding{{
		Rule:    policy.RestartPolicyAlways,
		Field:   field.NewPath("spec", "template", "spec", "restartPolicy"),
		Message: fmt.Sprintf("restartPolicy is %s, but daemon pods must restart whenever they stop; set it to Always or leave it out", rp),
	}}
}
