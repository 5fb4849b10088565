//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestARolloutPredictedToStallStallsAndTheNamedFixFinishesIt reproduces the
// Kubernetes test-infra outage of issue 14 on the real controllers: of five
// nodes that run an agent, two lose their kubelet; the node lifecycle
// controller marks them unreachable and their pods not ready. An update at
// maxUnavailable 1 gets the rollout-stall warning, and the DaemonSet
// controller indeed replaces nothing on the three healthy nodes; raising
// maxUnavailable to what the warning names gets no warning, and the rollout
// finishes on every node that has a kubelet.
//
// kwok plays the kubelet of the healthy nodes. That of the two others is
// this test, which kwok leaves alone (the local cluster's kwok manages only
// nodes annotated kwok.x-k8s.io/node=fake): it reports them Ready and their
// pods running, then stops, as a kubelet that dies does.
func TestARolloutPredictedToStallStallsAndTheNamedFixFinishesIt(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-stall")
	g := NewWithT(t)
	ctx := context.Background()
	requireKwok(t, c)

	// The pool's own label and taint keep the suite's other DaemonSets off
	// its nodes.
	pool := map[string]string{"e2e-pool": ns}
	taint := corev1.Taint{Key: "e2e-pool", Value: ns, Effect: corev1.TaintEffectNoSchedule}
	var healthy, dying []string
	for i := range 5 {
		name := fmt.Sprintf("%s-%d", ns, i)
		if i < 3 {
			healthy = append(healthy, name)
		} else {
			dying = append(dying, name)
		}
		c.createNode(t, name, pool, taint, i < 3, nil)
	}
	kubelet := c.playKubelet(t, ns, dying)

	ds, _ := c.create(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		s := &ds.Spec.Template.Spec
		s.NodeSelector = pool
		s.Tolerations = []corev1.Toleration{{Key: taint.Key, Operator: corev1.TolerationOpExists}}
		one := intstr.FromInt32(1)
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one}
	}))
	c.settled(t, ds, 5)

	kubelet.stop()
	g.Eventually(func(g Gomega) {
		for _, name := range dying {
			n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			// The NoSchedule taint, not the NoExecute one that daemon pods
			// tolerate, is what takes the node from the DaemonSet.
			g.Expect(n.Spec.Taints).To(ContainElement(And(HaveField("Key", corev1.TaintNodeUnreachable), HaveField("Effect", corev1.TaintEffectNoSchedule))),
				"node %s is unreachable (conditions %+v)", name, n.Status.Conditions)
		}
		live, err := c.client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(live.Status.DesiredNumberScheduled).To(BeEquivalentTo(3), "unreachable nodes are no longer desired")
		g.Expect(live.Status.NumberMisscheduled).To(BeEquivalentTo(2), "but their pods still run there")
	}, 3*time.Minute, time.Second).Should(Succeed(), "the node lifecycle controller marks the nodes without a kubelet")

	c.warnings.Take()
	ds = c.updateDaemonSet(t, ds, func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "registry.k8s.io/pause:3.9" })
	g.Expect(c.warnings.Take()).To(ContainElement(ContainSubstring(
		"[rollout-stall] spec.updateStrategy.rollingUpdate.maxUnavailable: the rollout will stall: 2 of 5 targeted nodes are not ready or unreachable, " +
			"and their daemon pods can be neither replaced nor removed, which uses up maxUnavailable (1); raise maxUnavailable to at least 3")))

	// The controller acts on the update (it deletes the old pods of the
	// unreachable nodes, which no kubelet confirms) and then waits for good.
	g.Eventually(func() int { return len(terminating(c.pods(t, ds))) }, time.Minute, 250*time.Millisecond).Should(Equal(2),
		"the controller deletes the unavailable old pods")
	g.Consistently(func() []string { return updatedOn(c.pods(t, ds), ds, healthy) }, 20*time.Second, time.Second).Should(BeEmpty(),
		"no healthy node gets the new pod while the terminating pods use up maxUnavailable")

	c.warnings.Take()
	c.updateDaemonSet(t, ds, func(ds *appsv1.DaemonSet) {
		three := intstr.FromInt32(3)
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &three
	})
	for _, w := range c.warnings.Take() {
		g.Expect(w).NotTo(HavePrefix("[rollout-stall]"), "raising maxUnavailable as told is predicted to finish")
	}
	g.Eventually(func() []string { return updatedOn(c.pods(t, ds), ds, healthy) }, 90*time.Second, time.Second).Should(ConsistOf(healthy),
		"the rollout finishes on every node with a kubelet")
}

// requireKwok fails the test unless kwok plays the nodes' kubelets: only
// then does a Node object made by a test run pods. On kind such a node
// would stay NotReady, so e2e/kind/run.sh leaves these tests out by name
// rather than have them pass without testing anything.
func requireKwok(t *testing.T, c *cluster) {
	t.Helper()
	if len(c.nodes(t, func(n corev1.Node) bool { return n.Annotations["kwok.x-k8s.io/node"] == "fake" })) == 0 {
		t.Fatal("adding a node needs kwok to play its kubelet; run this test on the local cluster")
	}
}

// createNode creates a node with the labels and taint, played by kwok or
// not, with the given allocatable resources (nil: kwok's, all but infinite),
// and deletes it when the test ends; one that kwok plays, once it is Ready.
func (c *cluster) createNode(t *testing.T, name string, labels map[string]string, taint corev1.Taint, kwok bool, allocatable corev1.ResourceList) {
	t.Helper()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{taint}},
		Status:     corev1.NodeStatus{Allocatable: allocatable, Capacity: allocatable},
	}
	for k, v := range labels {
		node.Labels[k] = v
	}
	if kwok {
		node.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake"}
	}
	if _, err := c.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting node %s: %v", name, err)
		}
	})
	if !kwok {
		return
	}
	// A new node carries the not-ready taint until the node lifecycle
	// controller sees the Ready that kwok reports.
	NewWithT(t).Eventually(func() []corev1.Taint {
		n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Spec.Taints
	}, 60*time.Second, 250*time.Millisecond).ShouldNot(ContainElement(HaveField("Key", corev1.TaintNodeNotReady)), "node %s becomes Ready", name)
}

// handKubelet is a test playing the kubelet of nodes: it reports them
// Ready and the pods bound to them running and ready, every second, until
// stopped.
type handKubelet struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (c *cluster) playKubelet(t *testing.T, namespace string, nodes []string) *handKubelet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &handKubelet{cancel: cancel}
	beat := func() {
		now := metav1.Now()
		for _, name := range nodes {
			n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")}
			n.Status.Capacity, n.Status.Allocatable = capacity, capacity
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: now, LastTransitionTime: nodeReadySince(n, now)}}
			_, _ = c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		}
		pods, err := c.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning || !slices.Contains(nodes, p.Spec.NodeName) {
				continue
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.StartTime = &now
			p.Status.Conditions = nil
			for _, cond := range []corev1.PodConditionType{corev1.PodInitialized, corev1.PodScheduled, corev1.ContainersReady, corev1.PodReady} {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: now})
			}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image, Ready: true,
				Started: new(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
			_, _ = c.client.CoreV1().Pods(namespace).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
		}
	}
	k.done.Go(func() {
		for {
			beat()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	})
	t.Cleanup(k.stop)
	return k
}

// stop makes the kubelet die: no status, no heartbeat, from now on.
func (k *handKubelet) stop() {
	k.cancel()
	k.done.Wait()
}

func nodeReadySince(n *corev1.Node, now metav1.Time) metav1.Time {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return cond.LastTransitionTime
		}
	}
	return now
}

// terminating returns the names of the pods being deleted.
func terminating(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// updatedOn returns the nodes among nodes that run an available pod of the
// DaemonSet's current template.
func updatedOn(pods []corev1.Pod, ds *appsv1.DaemonSet, nodes []string) []string {
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp == nil && slices.Contains(nodes, p.Spec.NodeName) && p.Spec.Containers[0].Image == ds.Spec.Template.Spec.Containers[0].Image && ready(p) {
			out = append(out, p.Spec.NodeName)
		}
	}
	return out
}

func ready(p corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
