package nodechange_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/generate/placement"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/nodechange"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestAStrippedDaemonSetIsPlacedAsTheWholeOne holds StripDaemonSet to what
// the re-evaluation reads, on random clusters and templates (PROPERTY_SEED
// replays a run): the stripped DaemonSet is placed on exactly the nodes the
// whole one is, keeps its identity and its skip annotation, and drops the
// rest.
func TestAStrippedDaemonSetIsPlacedAsTheWholeOne(t *testing.T) {
	rng := seed.Rand(t)
	for range 200 {
		nodes := placement.Nodes(rng, "node", 1+rng.IntN(12), placement.Options{ControllerTaints: true})
		inv := inventory.New(nodes...)
		ds := fixture.Realistic(func(ds *appsv1.DaemonSet) {
			spec := placement.Spec(rng, nodes, placement.Options{})
			s := &ds.Spec.Template.Spec
			s.NodeName, s.NodeSelector, s.Affinity, s.Tolerations, s.HostNetwork = spec.NodeName, spec.NodeSelector, spec.Affinity, spec.Tolerations, spec.HostNetwork
			ds.Annotations[rules.SkipAnnotation] = rules.TargetsNodes
			ds.UID = "a-uid"
		})
		obj, err := nodechange.StripDaemonSet(ds)
		if err != nil {
			t.Fatal(err)
		}
		stripped := obj.(*appsv1.DaemonSet)
		whole, err := inv.Coverage(&ds.Spec.Template.Spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := inv.Coverage(&stripped.Spec.Template.Spec)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != whole.String() {
			t.Fatalf("stripped DaemonSet would run on %s, the whole one on %s; template %+v", got, whole, ds.Spec.Template.Spec)
		}
		if stripped.UID != ds.UID || stripped.Name != ds.Name || stripped.Namespace != ds.Namespace {
			t.Errorf("identity lost: %+v", stripped.ObjectMeta)
		}
		if len(stripped.Annotations) != 1 || stripped.Annotations[rules.SkipAnnotation] != rules.TargetsNodes {
			t.Errorf("annotations = %v, want the skip annotation alone", stripped.Annotations)
		}
		if len(stripped.Spec.Template.Spec.Containers) != 0 || stripped.Labels != nil || stripped.ManagedFields != nil {
			t.Errorf("kept what placement does not read: %+v", stripped)
		}
	}
}
