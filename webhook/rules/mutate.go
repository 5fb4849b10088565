package rules

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// mutationRule changes the DaemonSet in place and reports whether it did.
// fields copies every field that apply may change from one DaemonSet to
// another: the mutating webhook diffs only those (see MutableFields).
type mutationRule struct {
	name   string
	apply  func(in *Input) bool
	fields func(from, to *appsv1.DaemonSet)
}

var mutationRules = []mutationRule{
	{policy.DefaultTolerations, defaultTolerations, func(from, to *appsv1.DaemonSet) {
		to.Spec.Template.Spec.Tolerations = from.Spec.Template.Spec.Tolerations
	}},
	{policy.RollingUpdateDefaults, rollingUpdateDefaults, func(from, to *appsv1.DaemonSet) {
		to.Spec.UpdateStrategy = from.Spec.UpdateStrategy
		to.Spec.MinReadySeconds = from.Spec.MinReadySeconds
	}},
}

// MutableFields returns a DaemonSet that holds only the fields Mutate may
// change, sharing them with ds. A JSON patch between the projections taken
// before and after Mutate is the patch between the whole objects, at a
// fraction of the cost of marshalling and diffing 4 KB twice. Marshal the
// first projection before mutating: Mutate changes the shared fields in place.
func MutableFields(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	projection := &appsv1.DaemonSet{}
	projection.Annotations = ds.Annotations // Mutate records itself there
	for _, r := range mutationRules {
		r.fields(ds, projection)
	}
	return projection
}

// withOwnMutableFields returns a copy of ds that Mutate can change without
// changing ds: only the mutable fields are copied deeply, the rest (most of a
// DaemonSet) is shared.
func withOwnMutableFields(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	shallow := *ds
	own := MutableFields(ds).DeepCopy()
	shallow.Annotations = own.Annotations
	for _, r := range mutationRules {
		r.fields(own, &shallow)
	}
	return &shallow
}

// Mutate applies every enabled mutation rule to in.Object and returns the
// names of those that changed it. It is idempotent: a second call on its own
// result changes nothing. The rules that changed the object are added to its
// MutatedAnnotation, so that a user can see why a field has a value they did
// not write.
func Mutate(in *Input) []string {
	var changed []string
	for _, r := range mutationRules {
		if in.Policy.Action(r.name) == policy.Apply && applies(in, r.name) && r.apply(in) {
			changed = append(changed, r.name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	var recorded []string
	if v := in.Object.Annotations[MutatedAnnotation]; v != "" {
		recorded = strings.Split(v, ",")
	}
	recorded = append(recorded, changed...)
	slices.Sort(recorded)
	if in.Object.Annotations == nil {
		in.Object.Annotations = map[string]string{}
	}
	in.Object.Annotations[MutatedAnnotation] = strings.Join(slices.Compact(recorded), ",")
	return changed
}
