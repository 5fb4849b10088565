//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestADaemonPodAtOrdinaryPriorityWaitsOnAFullNodeAndOneAtNodeCriticalPreempts
// holds priority-class to the real scheduler: on a node that an ordinary
// pod has filled, the daemon pod of a DaemonSet without a priorityClassName,
// which the webhook warns of, stays Pending; that of one at
// system-node-critical, which it does not warn of, preempts the ordinary pod
// and runs.
func TestADaemonPodAtOrdinaryPriorityWaitsOnAFullNodeAndOneAtNodeCriticalPreempts(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-priority")
	g := NewWithT(t)
	ctx := context.Background()
	requireKwok(t, c)

	node := ns + "-full"
	pool := map[string]string{"e2e-pool": ns}
	taint := corev1.Taint{Key: "e2e-pool", Value: ns, Effect: corev1.TaintEffectNoSchedule}
	c.createNode(t, node, pool, taint, true, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")})
	onPool := func(s *corev1.PodSpec) {
		s.NodeSelector = pool
		s.Tolerations = []corev1.Toleration{{Key: taint.Key, Operator: corev1.TolerationOpExists}}
		s.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")}
	}
	filler := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ordinary", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}
	onPool(&filler.Spec)
	_, err := c.client.CoreV1().Pods(ns).Create(ctx, filler, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() corev1.PodPhase {
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, "ordinary", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return p.Status.Phase
	}, 30*time.Second, 250*time.Millisecond).Should(Equal(corev1.PodRunning), "the ordinary pod fills the node")

	ordinary, warnings := c.createWarned(t, daemonSet(ns, "log-shipper", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.PriorityClassName = ""
		onPool(&ds.Spec.Template.Spec)
	}))
	g.Expect(warnings).To(ContainElement(HavePrefix("[priority-class] spec.template.spec.priorityClassName: the DaemonSet has no priorityClassName, so its pods get priority 0")))
	g.Eventually(func() []corev1.Pod { return c.pods(t, ordinary) }, 30*time.Second, 250*time.Millisecond).Should(HaveLen(1), "the controller creates the daemon pod")
	g.Consistently(func() corev1.PodPhase { return c.pods(t, ordinary)[0].Status.Phase }, 15*time.Second, time.Second).Should(Equal(corev1.PodPending),
		"the scheduler preempts nothing for a pod of equal priority")
	g.Expect(c.client.AppsV1().DaemonSets(ns).Delete(ctx, ordinary.Name, metav1.DeleteOptions{})).To(Succeed())

	critical, warnings := c.createWarned(t, daemonSet(ns, "cni-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) { onPool(&ds.Spec.Template.Spec) }))
	g.Expect(warnings).NotTo(ContainElement(HavePrefix("[priority-class]")))
	g.Eventually(func(g Gomega) {
		pods := c.pods(t, critical)
		g.Expect(pods).To(HaveLen(1))
		g.Expect(pods[0].Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(pods[0].Spec.NodeName).To(Equal(node))
	}, 60*time.Second, 250*time.Millisecond).Should(Succeed(), "the daemon pod at system-node-critical preempts the ordinary pod and runs")
	g.Eventually(func() bool {
		_, err := c.client.CoreV1().Pods(ns).Get(ctx, "ordinary", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 250*time.Millisecond).Should(BeTrue(), "the ordinary pod was preempted")
}
