package inventory

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxSharedKeys bounds the label keys a NodeStripper shares. A cluster's
// nodes use a few dozen; past the bound, keys are kept as decoded, so that
// keys unique to each node cannot grow the table without end, and keys of
// nodes that are gone hold at most this many small strings.
const maxSharedKeys = 4096

// NodeStripper is an informer transform that keeps only what placement
// depends on: name, labels and taints (and what the informer itself needs).
// Status, images, managedFields and annotations make up most of a Node's size
// and would grow the cache with every node.
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
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          s.labels(n.Labels),
		},
		Spec: corev1.NodeSpec{Taints: n.Spec.Taints},
	}, nil
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
