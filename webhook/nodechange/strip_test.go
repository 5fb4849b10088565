package nodechange_test

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/generate/placement"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/nodechange"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestAStrippedDaemonSetIsPlacedAsTheWholeOne holds StripDaemonSet to what
// the re-evaluation reads, on random clusters and templates (PROPERTY_SEED
// replays a run): the DaemonSet that Object rebuilds from the stripped one is
// placed on exactly the nodes the whole one is, and keeps its identity and
// its skip annotation.
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
			ds.UID, ds.ResourceVersion = "a-uid", "42"
			if rng.IntN(2) == 0 {
				ds.DeletionTimestamp = &metav1.Time{Time: time.Unix(1_800_000_000, 0)}
			}
		})
		obj, err := nodechange.StripDaemonSet(ds)
		if err != nil {
			t.Fatal(err)
		}
		stripped := obj.(*nodechange.DaemonSet).Object()
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
		if copied := obj.(*nodechange.DaemonSet).DeepCopyObject().(*nodechange.DaemonSet).Object(); !equality.Semantic.DeepEqual(copied, stripped) {
			t.Errorf("its deep copy holds %+v, want %+v", copied, stripped)
		}
		// The informer's store keys and compares its objects by these.
		if key, err := cache.MetaNamespaceKeyFunc(obj); err != nil || key != ds.Namespace+"/"+ds.Name {
			t.Errorf("the informer's store keys the stripped DaemonSet %q (%v), want %s/%s", key, err, ds.Namespace, ds.Name)
		}
		if m, err := meta.Accessor(obj); err != nil || m.GetResourceVersion() != ds.ResourceVersion || m.GetUID() != ds.UID {
			t.Errorf("the informer reads %v (%v), want resourceVersion %s and uid %s", m, err, ds.ResourceVersion, ds.UID)
		}
		if got := obj.(*nodechange.DaemonSet).Deleting; got != (ds.DeletionTimestamp != nil) {
			t.Errorf("Deleting = %v for deletionTimestamp %v", got, ds.DeletionTimestamp)
		}
	}
}

func TestStripDaemonSetPassesOtherObjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  any
	}{
		{"passes the tombstone of a delete the informer missed", cache.DeletedFinalStateUnknown{Key: "logging/fluent-bit"}},
		{"passes what it stripped before", &nodechange.DaemonSet{Name: "fluent-bit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nodechange.StripDaemonSet(tc.obj)
			if err != nil || !reflect.DeepEqual(got, tc.obj) {
				t.Errorf("StripDaemonSet = %v, %v; want it unchanged", got, err)
			}
		})
	}
}

func TestADeepCopyOfAStrippedDaemonSetSharesNothing(t *testing.T) {
	obj, err := nodechange.StripDaemonSet(fixture.Realistic(func(ds *appsv1.DaemonSet) {
		s := &ds.Spec.Template.Spec
		s.NodeSelector = map[string]string{"pool": "blue"}
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}},
		}}}
		s.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}
		ds.Annotations[rules.SkipAnnotation] = rules.TargetsNodes
	}))
	if err != nil {
		t.Fatal(err)
	}
	original := obj.(*nodechange.DaemonSet)
	before := original.Object().DeepCopy()
	copied := original.DeepCopyObject().(*nodechange.DaemonSet)
	*copied.Skip = "*"
	p := &copied.Placement
	p.NodeSelector["pool"] = "green"
	p.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key = "region"
	p.Tolerations[0].Key = "fpga"
	if !equality.Semantic.DeepEqual(original.Object(), before) {
		t.Errorf("changing the copy changed the original: skip %q, placement %+v", *original.Skip, original.Placement)
	}
}
