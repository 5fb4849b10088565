// Package inventory keeps a lean view of the cluster's Nodes and answers the
// question the DaemonSet controller answers: on which nodes would a pod of
// this template run?
//
// A template can tell nodes apart only by the label keys its nodeSelector and
// required node affinity name, by their taints and, through spec.nodeName or
// matchFields, by their names. Nodes are therefore grouped, per set of label
// keys that templates refer to, into classes of equal values of those keys and
// equal taints: a question costs one evaluation per class, however many nodes
// share it and however many other labels (instance ids, hostnames) tell them
// apart. The nodes a template names are evaluated one by one, the others by
// class.
package inventory

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/informed"
)

// maxGroupings bounds the groupings kept at once. Each costs a map entry per
// node; a cluster's DaemonSets refer to few distinct sets of label keys, and
// a grouping evicted is rebuilt on its next question in O(nodes).
const maxGroupings = 32

// Inventory is the set of Nodes with its groupings. It is safe for concurrent
// use and implements cache.ResourceEventHandler so that a Node informer keeps
// it current.
type Inventory struct {
	informed.Sync
	mu        sync.RWMutex
	nodes     map[string]*Node
	groupings map[string]*grouping
	// clock orders the groupings' uses, for eviction.
	clock atomic.Uint64
}

// New returns an inventory of the given nodes that reports itself synced.
// Attach it to an informer to have it follow the cluster instead.
func New(nodes ...*corev1.Node) *Inventory {
	inv := &Inventory{
		nodes:     map[string]*Node{},
		groupings: map[string]*grouping{},
	}
	for _, n := range nodes {
		inv.upsert(NodeOf(n))
	}
	return inv
}

// Attach makes the Node informer keep the inventory current. Until the
// informer has delivered its initial list, Synced reports false. An informer
// whose transform is a NodeStripper's stores no more of a Node than the
// inventory keeps.
func (inv *Inventory) Attach(informer informed.Informer) error { return inv.Track(informer, inv) }

// Size returns the number of nodes and of node classes summed over the
// groupings kept.
func (inv *Inventory) Size() (nodes, classes int) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	for _, g := range inv.groupings {
		classes += len(g.classes)
	}
	return len(inv.nodes), classes
}

// OnAdd implements cache.ResourceEventHandler, for Nodes whole or stripped.
func (inv *Inventory) OnAdd(obj any, _ bool) {
	if n := NodeOf(obj); n != nil {
		inv.upsert(n)
	}
}

// OnUpdate implements cache.ResourceEventHandler.
func (inv *Inventory) OnUpdate(_, obj any) { inv.OnAdd(obj, false) }

// OnDelete implements cache.ResourceEventHandler.
func (inv *Inventory) OnDelete(obj any) {
	n := NodeOf(informed.Deleted(obj))
	if n == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if old := inv.nodes[n.Name]; old != nil {
		delete(inv.nodes, n.Name)
		for _, g := range inv.groupings {
			g.remove(old)
		}
	}
}

func (inv *Inventory) upsert(n *Node) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	old := inv.nodes[n.Name]
	inv.nodes[n.Name] = n
	// Heartbeats and status updates land here: no grouping changes.
	if old != nil && samePlacementInputs(old, n) {
		return
	}
	for _, g := range inv.groupings {
		if old != nil {
			g.remove(old)
		}
		g.add(n)
	}
}

// PlacementChanged reports whether a node update, as an informer delivers
// it, can change which pods the node runs: heartbeats and status updates do
// not. Objects that are not Nodes count as changed.
func PlacementChanged(old, obj any) bool {
	o, n := NodeOf(old), NodeOf(obj)
	return o == nil || n == nil || !samePlacementInputs(o, n)
}

// samePlacementInputs reports whether two versions of a node are alike to
// every template: same labels, same taints. When a taint was added does not
// matter to a DaemonSet.
func samePlacementInputs(a, b *Node) bool {
	return maps.Equal(a.Labels, b.Labels) && slices.EqualFunc(a.Taints, b.Taints, func(x, y corev1.Taint) bool {
		return x.Key == y.Key && x.Value == y.Value && x.Effect == y.Effect
	})
}

// withGrouping calls f with the grouping on keys (sorted, distinct), building
// it if needed, while holding a lock that keeps it from changing.
func (inv *Inventory) withGrouping(keys []string, f func(*grouping) error) error {
	// Length-prefixed, as class keys are: check reads label keys from files
	// that no API server validated.
	var b strings.Builder
	for _, k := range keys {
		writePart(&b, k)
	}
	id := b.String()
	inv.mu.RLock()
	if g := inv.groupings[id]; g != nil {
		g.lastUsed.Store(inv.clock.Add(1))
		defer inv.mu.RUnlock()
		return f(g)
	}
	inv.mu.RUnlock()

	inv.mu.Lock()
	defer inv.mu.Unlock()
	g := inv.groupings[id]
	if g == nil {
		if len(inv.groupings) >= maxGroupings {
			inv.evictLeastRecentlyUsed()
		}
		g = newGrouping(keys)
		for _, n := range inv.nodes {
			g.add(n)
		}
		inv.groupings[id] = g
	}
	g.lastUsed.Store(inv.clock.Add(1))
	return f(g)
}

func (inv *Inventory) evictLeastRecentlyUsed() {
	var oldest string
	var oldestUse uint64
	first := true
	for id, g := range inv.groupings {
		if use := g.lastUsed.Load(); first || use < oldestUse {
			oldest, oldestUse, first = id, use, false
		}
	}
	delete(inv.groupings, oldest)
}
