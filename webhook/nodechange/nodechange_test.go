package nodechange_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestNodeChangesAreReportedOnTheDaemonSets runs the webhook, with its
// node-change re-evaluation, behind a real API server, changes nodes under
// DaemonSets it admitted, and reads the Events it made and its gauge.
func TestNodeChangesAreReportedOnTheDaemonSets(t *testing.T) {
	wh := testenv.StartWebhook(t, "")
	ctx := context.Background()
	client := wh.Client
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logging"}}, metav1.CreateOptions{})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())

	pool := func(name string, size int) []string {
		var names []string
		for i := range size {
			n := fixture.Node(fmt.Sprintf("%s-%d", name, i), []string{"pool", name})
			testenv.CreateReadyNodes(t, client, n)
			names = append(names, n.Name)
		}
		return names
	}
	agent := func(t *testing.T, name, pool string) *appsv1.DaemonSet {
		ds, err := client.AppsV1().DaemonSets("logging").Create(ctx, fixture.Written(name, func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.NodeSelector = map[string]string{"pool": pool}
		}), metav1.CreateOptions{})
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		return ds
	}
	relabel := func(t *testing.T, names []string, pool string) {
		for _, name := range names {
			n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			n.Labels["pool"] = pool
			_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
		}
	}
	events := func(ds *appsv1.DaemonSet) func() []eventsv1.Event {
		return func() []eventsv1.Event {
			list, err := client.EventsV1().Events(ds.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var out []eventsv1.Event
			for _, e := range list.Items {
				if e.Regarding.UID == ds.UID {
					out = append(out, e)
				}
			}
			return out
		}
	}
	eligible := func(ds *appsv1.DaemonSet) func() float64 {
		return func() float64 {
			families, err := wh.Metrics.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					if f.GetName() == "daemonset_guard_daemonset_eligible_nodes" && label(m.GetLabel(), "name") == ds.Name {
						return m.GetGauge().GetValue()
					}
				}
			}
			return -1
		}
	}

	t.Run("a pool relabelled node by node makes one NoEligibleNodes Event on the DaemonSet that selected it", func(t *testing.T) {
		g := NewWithT(t)
		nodes := pool("blue", 30)
		ds := agent(t, "blue-agent", "blue")
		g.Eventually(eligible(ds), 10*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(30), "the gauge says where it runs")
		relabel(t, nodes, "green")
		g.Eventually(events(ds), 15*time.Second, 200*time.Millisecond).Should(ConsistOf(And(
			HaveField("Reason", rules.NoEligibleNodes),
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", "a node change left the DaemonSet with no node to run on (it had 30): 0 of 30 nodes: 30 lack label pool=blue"),
		)))
		g.Expect(eligible(ds)()).To(BeZero())
		// A flap back, evaluated, and forth again, with a status update of
		// the DaemonSet between, makes no new Event object: the Events API
		// counts it in the first one's series.
		relabel(t, nodes[:29], "blue")
		g.Eventually(eligible(ds), 15*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(29))
		status, err := client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		status.Status.DesiredNumberScheduled = 29
		_, err = client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, status, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		relabel(t, nodes, "green")
		g.Eventually(eligible(ds), 15*time.Second, 100*time.Millisecond).Should(BeZero())
		g.Eventually(func() int32 {
			e := events(ds)()
			if len(e) != 1 || e[0].Series == nil {
				return 0
			}
			return e[0].Series.Count
		}, 15*time.Second, 200*time.Millisecond).Should(BeEquivalentTo(2), "one Event object, seen twice")
	})

	t.Run("a relabel that takes more than half the eligible nodes makes one EligibleNodesShrank Event", func(t *testing.T) {
		g := NewWithT(t)
		nodes := pool("red", 4)
		ds := agent(t, "red-agent", "red")
		g.Eventually(eligible(ds), 10*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(4))
		relabel(t, nodes[:3], "green")
		g.Eventually(events(ds), 15*time.Second, 200*time.Millisecond).Should(ConsistOf(And(
			HaveField("Reason", rules.EligibleNodesShrank),
			HaveField("Note", ContainSubstring("a node change made 3 of the DaemonSet's 4 eligible nodes ineligible, more than the policy's 50%: it now runs on 1 of ")),
		)))
	})

	t.Run("nodes that go away are no shrink; a DaemonSet left with none is still reported", func(t *testing.T) {
		g := NewWithT(t)
		nodes := pool("violet", 4)
		ds := agent(t, "violet-agent", "violet")
		g.Eventually(eligible(ds), 10*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(4))
		for _, name := range nodes[:3] {
			g.Expect(client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		}
		g.Eventually(eligible(ds), 15*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(1))
		g.Consistently(events(ds), 4*time.Second, 500*time.Millisecond).Should(BeEmpty(), "three of four nodes deleted is a scale-down, not a surprise")
		g.Expect(client.CoreV1().Nodes().Delete(ctx, nodes[3], metav1.DeleteOptions{})).To(Succeed())
		g.Eventually(events(ds), 15*time.Second, 200*time.Millisecond).Should(ConsistOf(HaveField("Reason", rules.NoEligibleNodes)))
	})

	t.Run("a DaemonSet whose targets-nodes is skipped gets no Event", func(t *testing.T) {
		g := NewWithT(t)
		nodes := pool("amber", 2)
		ds, err := client.AppsV1().DaemonSets("logging").Create(ctx, fixture.Written("amber-agent", func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "amber"}
			ds.Annotations = map[string]string{rules.SkipAnnotation: rules.TargetsNodes}
		}), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(eligible(ds), 10*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(2))
		relabel(t, nodes, "green")
		g.Eventually(eligible(ds), 15*time.Second, 100*time.Millisecond).Should(BeZero(), "it is re-evaluated all the same")
		g.Consistently(events(ds), 4*time.Second, 500*time.Millisecond).Should(BeEmpty())
	})

	t.Run("a deleted DaemonSet leaves the gauge", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := client.AppsV1().DaemonSets("logging").Get(ctx, "red-agent", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(client.AppsV1().DaemonSets("logging").Delete(ctx, ds.Name, metav1.DeleteOptions{})).To(Succeed())
		g.Eventually(eligible(ds), 10*time.Second, 100*time.Millisecond).Should(BeEquivalentTo(-1))
	})
}

func label(pairs []*dto.LabelPair, name string) string {
	for _, p := range pairs {
		if p.GetName() == name {
			return p.GetValue()
		}
	}
	return ""
}
