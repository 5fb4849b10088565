//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestARelabelThatLeavesADaemonSetWithNoNodeMakesOneEvent relabels, one by
// one and while the controller removes the pods, every node a running
// DaemonSet selects: the webhook (its leader, in a cluster) reports it with
// exactly one NoEligibleNodes Event object on the DaemonSet, however many
// node updates and status changes the relabel took, with the reason in its
// note; it makes no EligibleNodesShrank Event beside it.
func TestARelabelThatLeavesADaemonSetWithNoNodeMakesOneEvent(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-node-change")
	g := NewWithT(t)
	ctx := context.Background()
	pool := c.nodes(t, func(n corev1.Node) bool { return len(n.Spec.Taints) == 0 })
	g.Expect(len(pool)).To(BeNumerically(">=", 3), "untainted nodes to label")
	pool = pool[:3]
	for _, name := range pool {
		c.updateNode(t, name, func(n *corev1.Node) { n.Labels["e2e-node-change"] = ns })
	}
	ds, want := c.create(t, daemonSet(ns, "pool-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"e2e-node-change": ns}
	}))
	g.Expect(want).To(Equal(3))
	c.settled(t, ds, 3)

	for _, name := range pool {
		c.updateNode(t, name, func(n *corev1.Node) { delete(n.Labels, "e2e-node-change") })
	}
	events := func() []eventsv1.Event {
		list, err := c.client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		var out []eventsv1.Event
		for _, e := range list.Items {
			if e.Regarding.UID == ds.UID && e.ReportingController == "daemonset-guard" {
				out = append(out, e)
			}
		}
		return out
	}
	oneEvent := ConsistOf(And(
		HaveField("Reason", "NoEligibleNodes"),
		HaveField("Type", corev1.EventTypeWarning),
		HaveField("Note", ContainSubstring("a node change left the DaemonSet with no node to run on (it had 3): 0 of ")),
		HaveField("Note", ContainSubstring("lack label e2e-node-change="+ns)),
	))
	g.Eventually(events, 60*time.Second, 500*time.Millisecond).Should(oneEvent, "the relabel is reported on the DaemonSet")
	c.settled(t, ds, 0)
	g.Consistently(events, 10*time.Second, time.Second).Should(oneEvent, "and only once, while the controller empties the DaemonSet")
}
