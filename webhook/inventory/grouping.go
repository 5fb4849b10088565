package inventory

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// grouping partitions the nodes into classes that no template referring only
// to its label keys can tell apart: nodes with the same value of each key (or
// without it) and the same taints.
type grouping struct {
	keys     []string
	classes  map[string]*class
	lastUsed atomic.Uint64
}

// class is a set of nodes alike to the grouping's templates. Its
// representative, a nameless node with the class's values of the keys and its
// taints, stands for all of them in a question.
type class struct {
	representative *corev1.Node
	members        map[string]struct{}
}

func newGrouping(keys []string) *grouping {
	return &grouping{keys: keys, classes: map[string]*class{}}
}

func (g *grouping) add(n *Node) {
	key := g.classKey(n)
	c := g.classes[key]
	if c == nil {
		c = &class{representative: g.representative(n), members: map[string]struct{}{}}
		g.classes[key] = c
	}
	c.members[n.Name] = struct{}{}
}

// remove takes the node out of its class; n must be the version that was added.
func (g *grouping) remove(n *Node) {
	key := g.classKey(n)
	if c := g.classes[key]; c != nil {
		delete(c.members, n.Name)
		if len(c.members) == 0 {
			delete(g.classes, key)
		}
	}
}

func (g *grouping) representative(n *Node) *corev1.Node {
	labels := make(map[string]string, len(g.keys))
	for _, k := range g.keys {
		if v, ok := n.Labels[k]; ok {
			labels[k] = v
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.NodeSpec{Taints: n.Taints},
	}
}

// classKey encodes the node's values of the grouping's keys, telling a label
// that is absent from one with an empty value, and its taints. Each part is
// length-prefixed, so no value, however written, can run into the next.
func (g *grouping) classKey(n *Node) string {
	var b strings.Builder
	for _, k := range g.keys {
		if v, ok := n.Labels[k]; ok {
			writePart(&b, v)
		} else {
			b.WriteByte('-')
		}
	}
	taints := slices.Clone(n.Taints)
	slices.SortFunc(taints, func(a, b corev1.Taint) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Effect, b.Effect), cmp.Compare(a.Value, b.Value))
	})
	for _, t := range taints {
		writePart(&b, t.Key)
		writePart(&b, t.Value)
		writePart(&b, string(t.Effect))
	}
	return b.String()
}

func writePart(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}
