package rules

import (
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// baselineObject returns, on an update, the stored object as the policy's
// mutation makes it, computed once per Input. Comparing with it as well as
// with the stored object means that a default the webhook adds (a policy
// toleration an image-only update now gets, on a DaemonSet stored before the
// policy had it) never counts as a change the user made.
func (in *Input) baselineObject() *appsv1.DaemonSet {
	if in.baseline == nil {
		in.baseline = sync.OnceValue(func() *appsv1.DaemonSet {
			probe := Input{Operation: Create, Object: probeOf(in.OldObject), Policy: in.Policy}
			// A mutation rule that fails leaves the baseline without its
			// change; the validator reports that failure on its own.
			_, _ = in.catalog.Mutate(&probe)
			return probe.Object
		})
	}
	return in.baseline()
}

// placementUnchanged reports whether an update leaves the placement inputs
// of the template as they were, or as the policy's mutation makes them.
func (in *Input) placementUnchanged() bool {
	spec := &in.Object.Spec.Template.Spec
	return inventory.SamePlacement(&in.OldObject.Spec.Template.Spec, spec) ||
		inventory.SamePlacement(&in.baselineObject().Spec.Template.Spec, spec)
}

// rollsPods reports whether an update changes the pod template, which makes
// the DaemonSet controller replace every daemon pod.
func (in *Input) rollsPods() bool {
	return !equality.Semantic.DeepEqual(in.OldObject.Spec.Template, in.Object.Spec.Template)
}
