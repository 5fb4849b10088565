package inventory

import (
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxSharedKeys bounds the label keys a NodeStripper shares. A cluster's
// nodes use a few dozen; past the bound, keys are kept as decoded, so that
// keys unique to each node cannot grow the table without end, and keys of
// nodes that are gone hold at most this many small strings.
const maxSharedKeys = 4096

// Node is what the inventory keeps of a Node: what placement depends on, its
// name, labels and taints, and the resourceVersion that the informer reads
// to tell a resync from an update. It is what NodeStripper makes of a Node
// for the informer's store: a corev1.Node is a 784-byte struct even with
// only these fields set, 12 times this one, and at 50,000 nodes the
// difference is 40 MB (issue 16).
type Node struct {
	Name            string
	ResourceVersion string
	Labels          map[string]string
	Taints          []corev1.Taint
}

// GetObjectKind implements runtime.Object: a stripped node has no kind.
func (*Node) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (n *Node) DeepCopyObject() runtime.Object {
	return &Node{Name: n.Name, ResourceVersion: n.ResourceVersion, Labels: maps.Clone(n.Labels), Taints: slices.Clone(n.Taints)}
}

// GetObjectMeta implements metav1.ObjectMetaAccessor, through which the
// informer's store reads the name and resourceVersion. What it returns is a
// copy: setting its fields changes nothing.
func (n *Node) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: n.Name, ResourceVersion: n.ResourceVersion, Labels: n.Labels}
}

// asCore fills node, whose other fields stay empty, with n, for the
// matchers of component-helpers that take a corev1.Node.
func (n *Node) asCore(node *corev1.Node) *corev1.Node {
	node.Name, node.Labels, node.Spec.Taints = n.Name, n.Labels, n.Taints
	return node
}

// NodeOf returns what the inventory keeps of an informer's object: the
// object itself if NodeStripper stripped it, or a whole Node stripped here;
// nil for anything else.
func NodeOf(obj any) *Node {
	switch n := obj.(type) {
	case *Node:
		return n
	case *corev1.Node:
		return &Node{Name: n.Name, ResourceVersion: n.ResourceVersion, Labels: n.Labels, Taints: n.Spec.Taints}
	}
	return nil
}

// NodeStripper is an informer transform that turns a Node into the Node the
// inventory keeps. Status, images, managedFields and annotations make up
// most of a Node's size and would grow the cache with every node.
//
// Every node repeats the same label keys, each decoded into a string of its
// own: the stripper stores each key once for all nodes, in a label map of the
// exact size. With a cloud provider's dozen labels, that is a sixth of what a
// stripped node keeps (issue 16).
type NodeStripper struct {
	mu   sync.Mutex
	keys map[string]string
}

// NewNodeStripper returns a stripper for one Node informer.
func NewNodeStripper() *NodeStripper {
	return &NodeStripper{keys: map[string]string{}}
}

// Strip implements cache.TransformFunc. Objects other than Nodes, such as the
// tombstones of deleted ones, pass unchanged.
func (s *NodeStripper) Strip(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	node := NodeOf(n)
	node.Labels = s.labels(n.Labels)
	return node, nil
}

func (s *NodeStripper) labels(decoded map[string]string) map[string]string {
	if decoded == nil {
		return nil
	}
	labels := make(map[string]string, len(decoded))
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range decoded {
		shared, ok := s.keys[k]
		if !ok {
			shared = k
			if len(s.keys) < maxSharedKeys {
				s.keys[k] = k
			}
		}
		labels[shared] = v
	}
	return labels
}
