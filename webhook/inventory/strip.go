package inventory

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StripNode is an informer transform that keeps only what placement depends
// on: name, labels and taints (and what the informer itself needs). Status,
// images, managedFields and annotations make up most of a Node's size and
// would grow the cache with every node.
func StripNode(obj any) (any, error) {
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
			Labels:          n.Labels,
		},
		Spec: corev1.NodeSpec{Taints: n.Spec.Taints},
	}, nil
}
