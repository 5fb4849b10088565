package testenv

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CreateReadyNodes creates the nodes as a kubelet would leave them once
// ready. The API server taints every new node not-ready:NoSchedule, which
// daemon pods do not tolerate; envtest has no kubelet and no node lifecycle
// controller to lift it, so this plays their part. The nodes' own taints stay.
func CreateReadyNodes(t *testing.T, client kubernetes.Interface, nodes ...*corev1.Node) {
	t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		created, err := client.CoreV1().Nodes().Create(ctx, n.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating node %s: %v", n.Name, err)
		}
		created.Spec.Taints = slices.DeleteFunc(created.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if _, err := client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("lifting the not-ready taint of node %s: %v", n.Name, err)
		}
	}
}
