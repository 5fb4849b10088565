//go:build e2e

package e2e

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var pendingPrediction = regexp.MustCompile(`leaves (\d+) of the (\d+) nodes the DaemonSet controller targets without a running daemon pod: .* the pods run on (\d+) nodes`)

// TestANamespaceNodeSelectorChangesWhereDaemonPodsRunAsPredicted holds
// namespace-placement to the API server's real PodNodeSelector plugin, which
// the local cluster enables: in a namespace whose node selector allows ssd
// nodes only, a DaemonSet that targets every untainted node runs pods on the
// ssd ones and leaves the others' Pending, as many as the warning says, while
// the controller still counts them all as desired.
func TestANamespaceNodeSelectorChangesWhereDaemonPodsRunAsPredicted(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-namespace-selector")
	g := NewWithT(t)
	ctx := context.Background()
	c.annotateNamespace(t, ns, "scheduler.alpha.kubernetes.io/node-selector", "disktype=ssd")

	c.namespaceSeen(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	ds, warnings := c.createWarned(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	var m []string
	for _, w := range warnings {
		if m = pendingPrediction.FindStringSubmatch(w); m != nil {
			break
		}
	}
	g.Expect(m).NotTo(BeNil(), "the namespace-placement warning among %q", warnings)
	pending, targeted, running := atoi(m[1]), atoi(m[2]), atoi(m[3])
	g.Expect(running).To(BeNumerically(">", 0))
	g.Expect(pending).To(BeNumerically(">", 0))
	g.Expect(targeted).To(Equal(predicted(t, warnings)), "targeted are the nodes targets-nodes predicts")

	count := func() (run, wait int) {
		for _, p := range c.pods(t, ds) {
			switch {
			case p.Status.Phase == corev1.PodRunning && ready(p):
				run++
			case p.Status.Phase == corev1.PodPending && p.Spec.NodeName == "":
				wait++
			}
		}
		return run, wait
	}
	g.Eventually(func() [2]int { r, w := count(); return [2]int{r, w} }, 60*time.Second, 500*time.Millisecond).Should(Equal([2]int{running, pending}),
		"as many pods run and stay Pending as predicted")
	g.Consistently(func() [2]int { r, w := count(); return [2]int{r, w} }, 5*time.Second, time.Second).Should(Equal([2]int{running, pending}))
	live, err := c.client.AppsV1().DaemonSets(ns).Get(ctx, ds.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live.Status.DesiredNumberScheduled).To(BeEquivalentTo(targeted), "the controller counts the Pending pods as desired")
}

// TestATolerationsWhitelistWithoutTheControllersTolerationsRefusesEveryDaemonPod
// holds namespace-placement to the real PodTolerationRestriction plugin: a
// whitelist that does not list the tolerations the DaemonSet controller adds
// refuses every daemon pod, as the warning says.
func TestATolerationsWhitelistWithoutTheControllersTolerationsRefusesEveryDaemonPod(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-namespace-whitelist")
	g := NewWithT(t)
	c.annotateNamespace(t, ns, "scheduler.alpha.kubernetes.io/tolerationsWhitelist", `[{"key":"taintKey","operator":"Exists"}]`)
	c.namespaceSeen(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))

	ds, warnings := c.createWarned(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	g.Expect(warnings).To(ContainElement(And(HavePrefix("[namespace-placement] spec.template.spec.tolerations:"),
		ContainSubstring("so PodTolerationRestriction refuses every daemon pod"))))
	g.Eventually(func() []string {
		events, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		var messages []string
		for _, e := range events.Items {
			if e.InvolvedObject.UID == ds.UID && e.Reason == "FailedCreate" {
				messages = append(messages, e.Message)
			}
		}
		return messages
	}, 30*time.Second, 500*time.Millisecond).Should(ContainElement(ContainSubstring("conflict with its namespace whitelist")), "the controller's creates are refused")
	g.Expect(c.pods(t, ds)).To(BeEmpty())
}

// annotateNamespace sets an annotation on a namespace.
func (c *cluster) annotateNamespace(t *testing.T, name, key, value string) {
	t.Helper()
	spaces := c.client.CoreV1().Namespaces()
	if err := update(spaces.Get, spaces.Update, name, func(ns *corev1.Namespace) {
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Annotations[key] = value
	}); err != nil {
		t.Fatalf("annotating namespace %s: %v", name, err)
	}
}

// namespaceSeen waits until the webhook's namespace informer has seen the
// namespace's annotations: until a dry-run create of ds gets a
// namespace-placement warning.
func (c *cluster) namespaceSeen(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	NewWithT(t).Eventually(func() []string {
		c.warnings.Take()
		_, err := c.client.AppsV1().DaemonSets(ds.Namespace).Create(context.Background(), ds.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("dry-run create of %s: %v", ds.Name, err)
		}
		return c.warnings.Take()
	}, 10*time.Second, 200*time.Millisecond).Should(ContainElement(HavePrefix("[namespace-placement]")), "the webhook sees the namespace's annotations")
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
