package inventory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
)

func TestInventoryFollowsNodeEvents(t *testing.T) {
	ssd := &corev1.PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}}
	inv := New()
	inv.OnAdd(fixture.Node("a", []string{"disktype", "ssd"}), true)
	inv.OnAdd(fixture.Node("b", []string{"disktype", "ssd"}), true)
	inv.OnAdd(fixture.Node("c", []string{"disktype", "hdd"}), true)
	assertSize(t, inv, 3, 2)
	assertEligible(t, inv, ssd, 2)

	t.Run("a relabelled node moves to its new class", func(t *testing.T) {
		inv.OnUpdate(fixture.Node("b", []string{"disktype", "ssd"}), fixture.Node("b", []string{"disktype", "hdd"}))
		assertSize(t, inv, 3, 2)
		assertEligible(t, inv, ssd, 1)
	})
	t.Run("an update that changes neither labels nor taints keeps the class", func(t *testing.T) {
		inv.OnUpdate(fixture.Node("a", []string{"disktype", "ssd"}), fixture.Node("a", []string{"disktype", "ssd"}))
		assertSize(t, inv, 3, 2)
		assertEligible(t, inv, ssd, 1)
	})
	t.Run("a new taint makes a class of its own", func(t *testing.T) {
		inv.OnUpdate(nil, fixture.Node("c", []string{"disktype", "hdd"}, fixture.Taint("maintenance", "", corev1.TaintEffectNoExecute)))
		assertSize(t, inv, 3, 3)
	})
	t.Run("deleting the last node of a class removes the class", func(t *testing.T) {
		inv.OnDelete(fixture.Node("a", nil))
		assertSize(t, inv, 2, 2)
		assertEligible(t, inv, ssd, 0)
	})
	t.Run("a deletion seen only as a tombstone still removes the node", func(t *testing.T) {
		inv.OnDelete(cache.DeletedFinalStateUnknown{Key: "c", Obj: fixture.Node("c", nil)})
		assertSize(t, inv, 1, 1)
	})
}

func assertSize(t *testing.T, inv *Inventory, nodes, classes int) {
	t.Helper()
	if n, c := inv.Size(); n != nodes || c != classes {
		t.Fatalf("inventory holds %d nodes in %d classes, want %d in %d", n, c, nodes, classes)
	}
}

func assertEligible(t *testing.T, inv *Inventory, spec *corev1.PodSpec, want int) {
	t.Helper()
	if got := inv.Coverage(spec).Eligible; got != want {
		t.Fatalf("%d eligible nodes, want %d", got, want)
	}
}

func TestCoverageString(t *testing.T) {
	c := Coverage{Nodes: 20, Eligible: 2, Exclusions: []Exclusion{
		{"lack label disktype=ssd", 9}, {"have untolerated taint dedicated=gpu:NoSchedule", 4}, {"lack label zone=a", 3}, {"lack label zone=b", 2},
	}}
	want := "2 of 20 nodes: 9 lack label disktype=ssd, 4 have untolerated taint dedicated=gpu:NoSchedule, 3 lack label zone=a, 2 for other reasons"
	if got := c.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestLostNamesTheNodesThatWouldLoseTheirPod(t *testing.T) {
	inv := New(
		fixture.Node("ssd-1", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}),
		fixture.Node("hdd-2", []string{"disktype", "hdd"}),
	)
	all := &corev1.PodSpec{}
	ssd := &corev1.PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}}
	pinned := &corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelHostname: "hdd-2"}}
	for _, tt := range []struct {
		name     string
		old, new *corev1.PodSpec
		want     []string
	}{
		{"narrowing to ssd drops the hdd nodes", all, ssd, []string{"hdd-1", "hdd-2"}},
		{"widening drops nothing", ssd, all, nil},
		{"pinning by hostname drops every other node, evaluated node by node", all, pinned, []string{"hdd-1", "ssd-1"}},
		{"an unchanged placement drops nothing", ssd, ssd, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := inv.Lost(tt.old, tt.new); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Lost = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestClassEvaluationEqualsTheControllerPredicate checks, on random clusters
// and templates, that the class index answers exactly what the DaemonSet
// controller's predicate answers node by node. The seed is printed so that a
// failure can be replayed.
func TestClassEvaluationEqualsTheControllerPredicate(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for round := range 200 {
		nodes := randomNodes(rng, 1+rng.IntN(60))
		inv := New(nodes...)
		spec := randomPodSpec(rng, nodes)
		want := 0
		for _, n := range nodes {
			if controllerShouldRun(n, spec) {
				want++
			}
		}
		if got := inv.Coverage(spec); got.Eligible != want {
			t.Fatalf("round %d (seed %d): class index says %d eligible nodes, controller predicate %d\nspec: %+v", round, seed, got.Eligible, want, spec)
		}
	}
}

// controllerShouldRun is nodeShouldRunDaemonPod written out node by node,
// with no class index in between.
func controllerShouldRun(node *corev1.Node, spec *corev1.PodSpec) bool {
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false
	}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: *spec}).Match(node); !ok {
		return false
	}
	_, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, daemonpod.Tolerations(spec), func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute || t.Effect == corev1.TaintEffectNoSchedule
	}, false)
	return !untolerated
}

var (
	randomLabelKeys = []string{"disktype", "zone", "pool", "gpu"}
	randomValues    = []string{"a", "b", "c"}
	randomTaints    = []corev1.Taint{
		fixture.Taint("dedicated", "gpu", corev1.TaintEffectNoSchedule),
		fixture.Taint("dedicated", "db", corev1.TaintEffectNoExecute),
		fixture.Taint("spot", "", corev1.TaintEffectPreferNoSchedule),
		fixture.Taint(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule),
		fixture.Taint(corev1.TaintNodeNetworkUnavailable, "", corev1.TaintEffectNoSchedule),
		fixture.ControlPlaneTaint,
	}
	randomTolerations = []corev1.Toleration{
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Operator: corev1.TolerationOpExists},
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	randomOperators = []corev1.NodeSelectorOperator{corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist}
)

func randomNodes(rng *rand.Rand, n int) []*corev1.Node {
	nodes := make([]*corev1.Node, n)
	for i := range nodes {
		var labels []string
		for _, k := range randomLabelKeys {
			if rng.IntN(3) > 0 {
				labels = append(labels, k, randomValues[rng.IntN(len(randomValues))])
			}
		}
		var taints []corev1.Taint
		for _, t := range randomTaints {
			if rng.IntN(5) == 0 {
				taints = append(taints, t)
			}
		}
		nodes[i] = fixture.Node(fmt.Sprintf("node-%d", i), labels, taints...)
	}
	return nodes
}

func randomPodSpec(rng *rand.Rand, nodes []*corev1.Node) *corev1.PodSpec {
	spec := &corev1.PodSpec{HostNetwork: rng.IntN(2) == 0}
	if rng.IntN(2) == 0 {
		spec.NodeSelector = map[string]string{randomLabelKeys[rng.IntN(len(randomLabelKeys))]: randomValues[rng.IntN(len(randomValues))]}
	}
	for _, t := range randomTolerations {
		if rng.IntN(3) == 0 {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
	if rng.IntN(10) == 0 {
		spec.NodeName = nodes[rng.IntN(len(nodes))].Name
	}
	if rng.IntN(2) == 0 {
		var terms []corev1.NodeSelectorTerm
		for range 1 + rng.IntN(2) {
			var term corev1.NodeSelectorTerm
			for range 1 + rng.IntN(2) {
				req := corev1.NodeSelectorRequirement{Key: randomLabelKeys[rng.IntN(len(randomLabelKeys))], Operator: randomOperators[rng.IntN(len(randomOperators))]}
				if req.Operator == corev1.NodeSelectorOpIn || req.Operator == corev1.NodeSelectorOpNotIn {
					req.Values = []string{randomValues[rng.IntN(len(randomValues))]}
				}
				term.MatchExpressions = append(term.MatchExpressions, req)
			}
			if rng.IntN(4) == 0 {
				term.MatchFields = []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{nodes[rng.IntN(len(nodes))].Name}}}
			}
			if rng.IntN(4) == 0 {
				term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpNotIn, Values: []string{nodes[0].Name}})
			}
			terms = append(terms, term)
		}
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	return spec
}

func TestStripNodeKeepsOnlyWhatPlacementNeeds(t *testing.T) {
	full := fixture.Node("n1", []string{"disktype", "ssd"}, fixture.ControlPlaneTaint)
	full.UID = "uid-1"
	full.ResourceVersion = "42"
	full.Annotations = map[string]string{"node.alpha.kubernetes.io/ttl": "0"}
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	full.Spec.PodCIDR = "10.0.0.0/24"
	full.Status = corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"big"}}}, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady}}}

	got, err := StripNode(full)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", ResourceVersion: "42", Labels: full.Labels},
		Spec:       corev1.NodeSpec{Taints: full.Spec.Taints},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripped node:\n got  %+v\n want %+v", got, want)
	}
	if other, _ := StripNode("not a node"); other != "not a node" {
		t.Errorf("StripNode changed an object that is not a Node: %v", other)
	}
}

func TestInventoryIsNotSyncedUntilTheInformerListedEveryNode(t *testing.T) {
	release := make(chan struct{})
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &corev1.NodeList{Items: []corev1.Node{*fixture.Node("n1", []string{"disktype", "ssd"})}}, nil
		},
		WatchFuncWithContext: func(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if opts.SendInitialEvents != nil {
				// Refuse streaming lists, as an older API server does, so
				// that the informer lists.
				return nil, errors.New("streaming lists are not supported here")
			}
			return watch.NewFake(), nil
		},
	}, &corev1.Node{}, 0, cache.Indexers{})
	inv := New()
	if err := inv.Attach(informer); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go informer.RunWithContext(ctx)

	g := NewWithT(t)
	g.Consistently(inv.Synced, 300*time.Millisecond, 10*time.Millisecond).Should(BeFalse(), "not synced while the first list is under way")
	close(release)
	g.Eventually(inv.Synced, 10*time.Second, 10*time.Millisecond).Should(BeTrue(), "synced once the first list arrived")
	if n, _ := inv.Size(); n != 1 {
		t.Errorf("synced with %d nodes, want the listed one", n)
	}
}
