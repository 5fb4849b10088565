// Package inventory keeps a lean, indexed view of the cluster's Nodes and
// answers the question the DaemonSet controller answers: on which nodes would
// a pod of this template run?
//
// Nodes are grouped into classes of equal labels (less per-node identity
// labels such as kubernetes.io/hostname) and equal taints. Clusters have
// thousands of nodes but few classes, and a question costs one evaluation per
// class; only templates that name individual nodes are evaluated node by node.
package inventory

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// identityLabels hold one value per node. They are left out of the class key
// (or every node would be a class of its own); a template that refers to one
// is evaluated node by node.
var identityLabels = []string{corev1.LabelHostname}

// Inventory is the indexed set of Nodes. It is safe for concurrent use and
// implements cache.ResourceEventHandler so that a Node informer keeps it
// current.
type Inventory struct {
	mu      sync.RWMutex
	nodes   map[string]*corev1.Node
	classOf map[string]*class
	classes map[string]*class
	synced  func() bool
}

// class is a set of nodes with equal labels, identity labels aside, and equal
// taints. Its representative stands for all of them in a question.
type class struct {
	representative *corev1.Node
	members        map[string]*corev1.Node
}

// New returns an empty inventory that reports itself synced. Attach it to an
// informer to have it follow the cluster instead.
func New(nodes ...*corev1.Node) *Inventory {
	inv := &Inventory{
		nodes:   map[string]*corev1.Node{},
		classOf: map[string]*class{},
		classes: map[string]*class{},
		synced:  func() bool { return true },
	}
	for _, n := range nodes {
		inv.upsert(n)
	}
	return inv
}

// Informer is the part of a Node informer the inventory needs; client-go's
// and controller-runtime's informers both have it.
type Informer interface {
	AddEventHandler(handler cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error)
}

// Attach makes the informer keep the inventory current. Until the informer has
// delivered its initial list, Synced reports false.
func (inv *Inventory) Attach(informer Informer) error {
	reg, err := informer.AddEventHandler(inv)
	if err != nil {
		return err
	}
	inv.mu.Lock()
	inv.synced = reg.HasSynced
	inv.mu.Unlock()
	return nil
}

// Synced reports whether the inventory holds the cluster's full node list.
func (inv *Inventory) Synced() bool {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return inv.synced()
}

// Size returns the number of nodes and of node classes.
func (inv *Inventory) Size() (nodes, classes int) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return len(inv.nodes), len(inv.classes)
}

// OnAdd implements cache.ResourceEventHandler.
func (inv *Inventory) OnAdd(obj any, _ bool) {
	if n, ok := obj.(*corev1.Node); ok {
		inv.upsert(n)
	}
}

// OnUpdate implements cache.ResourceEventHandler.
func (inv *Inventory) OnUpdate(_, obj any) { inv.OnAdd(obj, false) }

// OnDelete implements cache.ResourceEventHandler.
func (inv *Inventory) OnDelete(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		inv.remove(n.Name)
	}
}

func (inv *Inventory) upsert(n *corev1.Node) {
	key := classKey(n)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if c := inv.classOf[n.Name]; c != nil && c == inv.classes[key] {
		// Heartbeats and status updates land here: same class, new object.
		c.members[n.Name] = n
		inv.nodes[n.Name] = n
		return
	}
	inv.remove(n.Name)
	c := inv.classes[key]
	if c == nil {
		c = &class{representative: representative(n), members: map[string]*corev1.Node{}}
		inv.classes[key] = c
	}
	c.members[n.Name] = n
	inv.classOf[n.Name] = c
	inv.nodes[n.Name] = n
}

func (inv *Inventory) remove(name string) {
	c := inv.classOf[name]
	if c == nil {
		return
	}
	delete(c.members, name)
	if len(c.members) == 0 {
		delete(inv.classes, classKey(c.representative))
	}
	delete(inv.classOf, name)
	delete(inv.nodes, name)
}

// representative is a nameless node with the class's labels and taints.
func representative(n *corev1.Node) *corev1.Node {
	labels := make(map[string]string, len(n.Labels))
	for k, v := range n.Labels {
		if !slices.Contains(identityLabels, k) {
			labels[k] = v
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.NodeSpec{Taints: n.Spec.Taints},
	}
}

// classKey encodes the labels (identity labels aside) and taints of a node.
// Keys and values cannot hold the separators used here: label keys and values
// never contain '=' or '\n', taint parts never contain '\x00'.
func classKey(n *corev1.Node) string {
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		if !slices.Contains(identityLabels, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(n.Labels[k])
		b.WriteByte('\n')
	}
	taints := slices.Clone(n.Spec.Taints)
	slices.SortFunc(taints, func(a, b corev1.Taint) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Effect, b.Effect), cmp.Compare(a.Value, b.Value))
	})
	for _, t := range taints {
		b.WriteByte('\x00')
		b.WriteString(t.Key)
		b.WriteByte('\x00')
		b.WriteString(t.Value)
		b.WriteByte('\x00')
		b.WriteString(string(t.Effect))
	}
	return b.String()
}
