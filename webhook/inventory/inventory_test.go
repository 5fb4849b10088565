package inventory

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

func TestInventoryFollowsNodeEvents(t *testing.T) {
	ssd := &corev1.PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}}
	inv := New()
	inv.OnAdd(fixture.Node("a", []string{"disktype", "ssd"}), true)
	inv.OnAdd(fixture.Node("b", []string{"disktype", "ssd"}), true)
	inv.OnAdd(fixture.Node("c", []string{"disktype", "hdd"}), true)
	assertEligible(t, inv, ssd, 2)
	assertSize(t, inv, 3, 2) // the grouping on disktype: ssd and hdd

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
	t.Run("a label no template refers to makes no class of its own", func(t *testing.T) {
		inv.OnUpdate(nil, fixture.Node("a", []string{"disktype", "ssd", "instance-id", "i-0a1b2c"}))
		assertSize(t, inv, 3, 2)
		assertEligible(t, inv, ssd, 1)
	})
	t.Run("a new taint makes a class of its own", func(t *testing.T) {
		inv.OnUpdate(nil, fixture.Node("c", []string{"disktype", "hdd"}, fixture.Taint("maintenance", "", corev1.TaintEffectNoExecute)))
		assertSize(t, inv, 3, 3)
	})
	t.Run("a label present with an empty value is not an absent label", func(t *testing.T) {
		controlPlane := &corev1.PodSpec{NodeSelector: map[string]string{"node-role.kubernetes.io/control-plane": ""}}
		inv.OnUpdate(nil, fixture.Node("b", []string{"disktype", "hdd", "node-role.kubernetes.io/control-plane", ""}))
		assertEligible(t, inv, controlPlane, 1)
	})
	t.Run("deleting the last node of a class removes the class", func(t *testing.T) {
		inv.OnDelete(fixture.Node("a", nil))
		assertEligible(t, inv, ssd, 0)
		if _, classes := inv.Size(); classes != 4 { // disktype: hdd, hdd with the taint; control-plane: "", absent with the taint
			t.Errorf("%d classes, want 4", classes)
		}
	})
	t.Run("a deletion seen only as a tombstone still removes the node", func(t *testing.T) {
		inv.OnDelete(cache.DeletedFinalStateUnknown{Key: "c", Obj: fixture.Node("c", nil)})
		if n, _ := inv.Size(); n != 1 {
			t.Errorf("%d nodes, want 1", n)
		}
		assertEligible(t, inv, &corev1.PodSpec{}, 1)
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
	cov, err := inv.Coverage(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cov.Eligible != want {
		t.Fatalf("%d eligible nodes, want %d", cov.Eligible, want)
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
			got, _, err := inv.Moved(tt.old, tt.new)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lost = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNodeStripperKeepsOnlyWhatPlacementNeeds(t *testing.T) {
	full := fixture.Node("n1", []string{"disktype", "ssd"}, fixture.ControlPlaneTaint)
	full.UID = "uid-1"
	full.ResourceVersion = "42"
	full.Annotations = map[string]string{"node.alpha.kubernetes.io/ttl": "0"}
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	full.Spec.PodCIDR = "10.0.0.0/24"
	full.Status = corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"big"}}}, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady}}}
	stripper := NewNodeStripper()

	got, err := stripper.Strip(full)
	if err != nil {
		t.Fatal(err)
	}
	want := &Node{Name: "n1", ResourceVersion: "42", Labels: full.Labels, Taints: full.Spec.Taints}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripped node:\n got  %+v\n want %+v", got, want)
	}
	if key, err := cache.MetaNamespaceKeyFunc(got); err != nil || key != "n1" {
		t.Errorf("the informer's store keys the stripped node %q (%v), want n1", key, err)
	}
	if m, err := meta.Accessor(got); err != nil || m.GetResourceVersion() != "42" {
		t.Errorf("the informer reads resourceVersion %v (%v), want 42", m, err)
	}
	copied := got.(runtime.Object).DeepCopyObject().(*Node)
	copied.Labels["disktype"], copied.Taints[0].Key = "hdd", "changed"
	if !reflect.DeepEqual(got, want) || full.Labels["disktype"] != "ssd" || full.Spec.Taints[0].Key == "changed" {
		t.Errorf("changing a deep copy changed the stripped node: %+v", got)
	}
	unlabelled, _ := stripper.Strip(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}})
	if labels := unlabelled.(*Node).Labels; labels != nil {
		t.Errorf("a node without labels came out with %#v", labels)
	}
	if other, _ := stripper.Strip("not a node"); other != "not a node" {
		t.Errorf("Strip changed an object that is not a Node: %v", other)
	}
}

func TestNodeStripperStoresEachLabelKeyOnceUpToItsBound(t *testing.T) {
	// Decoding gives every node its own copy of every key.
	decoded := func(name string, keys ...string) *corev1.Node {
		labels := map[string]string{}
		for _, k := range keys {
			labels[strings.Clone(k)] = name
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	keyData := func(obj any, key string) *byte {
		for k := range obj.(*Node).Labels {
			if k == key {
				return unsafe.StringData(k)
			}
		}
		t.Fatalf("stripped node has no label %s", key)
		return nil
	}
	const zone = "topology.kubernetes.io/zone"
	stripper := NewNodeStripper()
	a, _ := stripper.Strip(decoded("a", zone, "kubernetes.io/hostname"))
	b, _ := stripper.Strip(decoded("b", zone, "kubernetes.io/hostname"))
	if keyData(a, zone) != keyData(b, zone) {
		t.Error("two nodes keep two copies of the same label key")
	}
	if got := b.(*Node).Labels; !reflect.DeepEqual(got, map[string]string{zone: "b", "kubernetes.io/hostname": "b"}) {
		t.Errorf("labels = %v", got)
	}

	for i := len(stripper.keys); i < maxSharedKeys; i++ {
		_, _ = stripper.Strip(decoded("filler", "example.com/key-"+strconv.Itoa(i)))
	}
	c, _ := stripper.Strip(decoded("c", zone, "example.com/one-too-many"))
	if len(stripper.keys) != maxSharedKeys {
		t.Errorf("the stripper shares %d keys, want at most %d", len(stripper.keys), maxSharedKeys)
	}
	if keyData(c, zone) != keyData(a, zone) {
		t.Error("a key shared before the bound stops being shared after it")
	}
	if got := c.(*Node).Labels["example.com/one-too-many"]; got != "c" {
		t.Errorf("a key past the bound lost its value: %q", got)
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

// TestGroupingsOfKeysThatRunTogetherStayApart asks about a label key holding
// a newline, which check may read from a file no API server validated, and
// then about the two keys it would spell if joined by one: each question
// gets its own grouping and its own answer.
func TestGroupingsOfKeysThatRunTogetherStayApart(t *testing.T) {
	inv := New(fixture.Node("n1", []string{"a", "1", "b", "1"}), fixture.Node("n2", []string{"a", "1", "b", "1"}))
	assertEligible(t, inv, &corev1.PodSpec{NodeSelector: map[string]string{"a\nb": "1"}}, 0)
	assertEligible(t, inv, &corev1.PodSpec{NodeSelector: map[string]string{"a": "1", "b": "1"}}, 2)
}

// TestInventoryFollowsAnInformerThatStoresStrippedNodes runs client-go's
// informer with the stripper as its transform, as the webhook does, through
// adds, a relabel, a heartbeat, a delete, and a relist that misses a delete
// and reports it as a tombstone: the store holds only stripped nodes, keyed
// by name, and the inventory follows every change.
func TestInventoryFollowsAnInformerThatStoresStrippedNodes(t *testing.T) {
	node := func(name, rv, disktype string) *corev1.Node {
		n := fixture.Node(name, []string{"disktype", disktype})
		n.ResourceVersion = rv
		n.Status.Images = []corev1.ContainerImage{{Names: []string{"registry.example/agent:v1"}, SizeBytes: 1 << 20}}
		return n
	}
	lists := make(chan *corev1.NodeList, 2)
	lists <- &corev1.NodeList{ListMeta: metav1.ListMeta{ResourceVersion: "2"}, Items: []corev1.Node{*node("a", "1", "ssd"), *node("b", "2", "ssd")}}
	watches := make(chan *watch.FakeWatcher, 2)
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			select {
			case l := <-lists:
				return l, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		WatchFuncWithContext: func(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if opts.SendInitialEvents != nil {
				return nil, errors.New("streaming lists are not supported here")
			}
			w := watch.NewFake()
			watches <- w
			return w, nil
		},
	}, &corev1.Node{}, 0, cache.Indexers{})
	if err := informer.SetTransform(NewNodeStripper().Strip); err != nil {
		t.Fatal(err)
	}
	inv := New()
	if err := inv.Attach(informer); err != nil {
		t.Fatal(err)
	}
	// Each update this handler saw, by resourceVersion: whether it changed
	// placement. Handlers are told after the store and the inventory have
	// changed, each in its own goroutine, so the test waits for the entry.
	var updates sync.Map
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(old, obj any) {
		updates.Store(NodeOf(obj).ResourceVersion, PlacementChanged(old, obj))
	}}); err != nil {
		t.Fatal(err)
	}
	placementChanged := func(rv string) func() any {
		return func() any { changed, _ := updates.Load(rv); return changed }
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go informer.RunWithContext(ctx)

	g := NewWithT(t)
	ssd := &corev1.PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}}
	eligible := func() int {
		cov, err := inv.Coverage(ssd)
		g.Expect(err).NotTo(HaveOccurred())
		return cov.Eligible
	}
	g.Eventually(inv.Synced, 10*time.Second, 10*time.Millisecond).Should(BeTrue())
	g.Expect(eligible()).To(Equal(2))
	for _, obj := range informer.GetStore().List() {
		g.Expect(obj).To(BeAssignableToTypeOf(&Node{}), "the store holds stripped nodes only")
	}
	g.Expect(informer.GetStore().ListKeys()).To(ConsistOf("a", "b"))

	var w *watch.FakeWatcher
	g.Eventually(watches, 10*time.Second).Should(Receive(&w))
	w.Modify(node("a", "3", "hdd"))
	g.Eventually(eligible, 10*time.Second, 10*time.Millisecond).Should(Equal(1), "the relabel of a")
	g.Eventually(placementChanged("3"), 10*time.Second, 10*time.Millisecond).Should(BeTrue(), "a relabel changes placement")

	w.Modify(node("b", "4", "ssd"))
	g.Eventually(func() string {
		obj, _, _ := informer.GetStore().GetByKey("b")
		n, _ := obj.(*Node)
		return n.ResourceVersion
	}, 10*time.Second, 10*time.Millisecond).Should(Equal("4"), "the heartbeat of b")
	g.Eventually(placementChanged("4"), 10*time.Second, 10*time.Millisecond).Should(BeFalse(), "a heartbeat changes no placement")
	g.Expect(eligible()).To(Equal(1))

	w.Add(node("c", "5", "ssd"))
	g.Eventually(eligible, 10*time.Second, 10*time.Millisecond).Should(Equal(2), "the new node c")
	w.Delete(node("c", "6", "ssd"))
	g.Eventually(eligible, 10*time.Second, 10*time.Millisecond).Should(Equal(1), "the deletion of c")

	// b goes while the watch is down: the relist reports it as a tombstone.
	lists <- &corev1.NodeList{ListMeta: metav1.ListMeta{ResourceVersion: "8"}, Items: []corev1.Node{*node("a", "3", "hdd")}}
	w.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"})
	g.Eventually(func() []string { return informer.GetStore().ListKeys() }, 10*time.Second, 10*time.Millisecond).Should(ConsistOf("a"))
	g.Eventually(eligible, 10*time.Second, 10*time.Millisecond).Should(Equal(0), "b, deleted during the relist")
	assertSize(t, inv, 1, 1)
}

func TestPlacementChanged(t *testing.T) {
	tainted := func(added metav1.Time) *corev1.Node {
		n := fixture.Node("n1", []string{"disktype", "ssd"}, fixture.Taint("maintenance", "", corev1.TaintEffectNoSchedule))
		n.Spec.Taints[0].TimeAdded = &added
		return n
	}
	stripped, _ := NewNodeStripper().Strip(tainted(metav1.Unix(1, 0)))
	heartbeat := tainted(metav1.Unix(1, 0))
	heartbeat.ResourceVersion = "2"
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	relabelled := tainted(metav1.Unix(1, 0))
	relabelled.Labels["disktype"] = "hdd"
	untainted := fixture.Node("n1", []string{"disktype", "ssd"})
	for _, tt := range []struct {
		name     string
		old, obj any
		want     bool
	}{
		{"a heartbeat changes no placement", stripped, heartbeat, false},
		{"a taint re-added at another time changes no placement", stripped, tainted(metav1.Unix(2, 0)), false},
		{"a relabel changes placement", stripped, relabelled, true},
		{"a lifted taint changes placement", stripped, untainted, true},
		{"an object that is not a node counts as a change", stripped, "not a node", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlacementChanged(tt.old, tt.obj); got != tt.want {
				t.Errorf("PlacementChanged = %v, want %v", got, tt.want)
			}
		})
	}
}
