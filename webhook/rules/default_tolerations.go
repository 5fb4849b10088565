package rules

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/core"
	corev1conversion "k8s.io/kubernetes/pkg/apis/core/v1"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"

	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// DefaultTolerations is the name of the rule that adds the policy's
// tolerations to pod templates.
const DefaultTolerations = "default-tolerations"

// DefaultTolerationsOptions configures default-tolerations.
type DefaultTolerationsOptions struct {
	// Tolerations are added to a pod template that does not already tolerate them.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
}

// Validate implements policy.Options with the API server's own toleration
// validation, so that a toleration the API would refuse in a pod template
// can never be injected into every DaemonSet, and refuses those the
// DaemonSet controller adds itself.
func (o *DefaultTolerationsOptions) Validate(path *field.Path) field.ErrorList {
	path = path.Child("tolerations")
	internal := make([]core.Toleration, len(o.Tolerations))
	for i := range o.Tolerations {
		if err := corev1conversion.Convert_v1_Toleration_To_core_Toleration(&o.Tolerations[i], &internal[i], nil); err != nil {
			return field.ErrorList{field.Invalid(path.Index(i), o.Tolerations[i], err.Error())}
		}
	}
	errs := corevalidation.ValidateTolerations(internal, path, corevalidation.PodValidationOptions{})
	for i, t := range o.Tolerations {
		if daemonpod.AddedByController(t.Key) {
			errs = append(errs, field.Forbidden(path.Index(i).Child("key"), fmt.Sprintf("the DaemonSet controller adds a toleration of %s to every daemon pod itself; adding it to templates would only roll every DaemonSet", t.Key)))
		}
	}
	return errs
}

// DefaultTolerations declares the rule.
func (builtin) DefaultTolerations() Rule {
	return Rule{
		Spec: policy.Spec{Name: DefaultTolerations, Kind: policy.Mutating, Default: policy.Apply,
			Options: func() policy.Options { return &DefaultTolerationsOptions{} }},
		Summary: "adds the policy's tolerations the template does not already tolerate",
		Description: "Appends each of the policy's tolerations that no toleration of the pod template already covers; the user's tolerations are never replaced. " +
			"A template change rolls every pod, so on an UPDATE it acts only when the update changes the template anyway. " +
			"The policy may not list a toleration the DaemonSet controller adds to every daemon pod by itself. The built-in policy lists none.",
		Apply: defaultTolerations,
		Fields: func(from, to *appsv1.DaemonSet) {
			to.Spec.Template.Spec.Tolerations = from.Spec.Template.Spec.Tolerations
		},
		Owned: [][]string{{"f:spec", "f:template", "f:spec", "f:tolerations"}},
	}
}

// defaultTolerations adds the policy's tolerations that the pod template does
// not already tolerate. A template change rolls every pod, so on update it
// acts only when the update changes the template anyway.
func defaultTolerations(in *Input) bool {
	if in.Operation == Update && !in.rollsPods() {
		return false
	}
	spec := &in.Object.Spec.Template.Spec
	changed := false
	for _, want := range policy.OptionsOf[*DefaultTolerationsOptions](in.Policy, DefaultTolerations).Tolerations {
		if !Tolerated(spec.Tolerations, want) {
			spec.Tolerations = append(spec.Tolerations, want)
			changed = true
		}
	}
	return changed
}
