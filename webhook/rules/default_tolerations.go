package rules

import (
	"k8s.io/apimachinery/pkg/api/equality"
)

// defaultTolerations adds the policy's tolerations that the pod template does
// not already tolerate. A template change rolls every pod, so on update it
// acts only when the update changes the template anyway.
func defaultTolerations(in *Input) bool {
	if in.Operation == Update && equality.Semantic.DeepEqual(in.OldObject.Spec.Template, in.Object.Spec.Template) {
		return false
	}
	spec := &in.Object.Spec.Template.Spec
	changed := false
	for _, want := range in.Policy.Mutation.Tolerations {
		if !Tolerated(spec.Tolerations, want) {
			spec.Tolerations = append(spec.Tolerations, want)
			changed = true
		}
	}
	return changed
}
