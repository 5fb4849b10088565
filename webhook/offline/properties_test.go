package offline_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

var (
	someTolerations = []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Operator: corev1.TolerationOpExists},
		{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)},
	}
	someShares = []intstr.IntOrString{intstr.FromInt32(1), intstr.FromInt32(3), intstr.FromString("10%"), intstr.FromString("25%"), intstr.FromString("100%")}
)

func pick[T any](rng *rand.Rand, from []T) []T {
	var out []T
	for _, v := range from {
		if rng.IntN(3) == 0 {
			out = append(out, v)
		}
	}
	return out
}

func randomPolicy(rng *rand.Rand) *policy.Policy {
	p := policy.Default()
	p.Mutation.Tolerations = pick(rng, someTolerations[:3])
	if rng.IntN(2) == 0 {
		p.Mutation.RollingUpdate.MaxUnavailable = ptr.To(someShares[rng.IntN(len(someShares))])
	}
	if rng.IntN(2) == 0 {
		p.Mutation.RollingUpdate.MinReadySeconds = ptr.To(int32(rng.IntN(30)))
	}
	return p
}

// randomDaemonSet writes a DaemonSet as a user might: some tolerations, a
// strategy or not, a nodeSelector or not, annotations that change the rules.
func randomDaemonSet(rng *rand.Rand, i int) *appsv1.DaemonSet {
	ds := fixture.Written(fmt.Sprintf("ds-%d", i))
	ds.Spec.Template.Spec.Tolerations = pick(rng, someTolerations)
	switch rng.IntN(4) {
	case 0:
		ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	case 1:
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(someShares[rng.IntN(len(someShares))])}
	}
	if rng.IntN(3) == 0 {
		ds.Spec.MinReadySeconds = int32(rng.IntN(20))
	}
	if rng.IntN(3) == 0 {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": []string{"ssd", "hdd", "nvme"}[rng.IntN(3)]}
	}
	switch rng.IntN(5) {
	case 0:
		ds.Annotations = map[string]string{rules.SkipAnnotation: "default-tolerations"}
	case 1:
		ds.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"minReadySeconds":0,"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}}}}`}
	}
	return ds
}

// seed returns the seed of a randomised test, printed so that a failure can be
// replayed with PROPERTY_SEED.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("PROPERTY_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("PROPERTY_SEED=%d", s)
	return s
}

// TestMutationProperties checks, over generated DaemonSets and policies,
// what must hold whatever the input: the mutation is idempotent, keeps the
// DaemonSet owning its pods, and never touches the template of an update
// that leaves the template alone, even after the policy changed.
func TestMutationProperties(t *testing.T) {
	s := seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	nodes := inventory.New(corpusNodes(t)...)
	for i := range 500 {
		pol, ds := randomPolicy(rng), randomDaemonSet(rng, i)
		res, err := offline.Evaluate(ds, pol, nodes)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}

		again, err := offline.Evaluate(res.Admitted, pol, nodes)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if len(again.Patch) > 0 {
			t.Fatalf("case %d (PROPERTY_SEED=%d): not idempotent; the second pass patched %+v", i, s, again.Patch)
		}

		sel, err := metav1.LabelSelectorAsSelector(res.Admitted.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(res.Admitted.Spec.Template.Labels)) {
			t.Fatalf("case %d (PROPERTY_SEED=%d): the mutated DaemonSet no longer selects its template (%v)", i, s, err)
		}

		// The cluster's policy changes; a user then changes only a label.
		old := res.Admitted
		updated := old.DeepCopy()
		updated.Labels = map[string]string{"team": strconv.Itoa(i)}
		rules.Mutate(&rules.Input{Operation: rules.Update, Object: updated, OldObject: old, Policy: randomPolicy(rng), Nodes: nodes})
		if !equality.Semantic.DeepEqual(updated.Spec.Template, old.Spec.Template) {
			t.Fatalf("case %d (PROPERTY_SEED=%d): an update that left the template alone got a template change", i, s)
		}
	}
}
