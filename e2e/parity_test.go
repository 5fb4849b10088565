//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/generate/placement"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// parityCases is how many random DaemonSets TestPlacementEqualsTheController
// creates; E2E_PARITY_CASES changes it.
const parityCases = 500

// TestPlacementEqualsTheController holds the webhook's prediction to the real
// DaemonSet controller of kube-controller-manager on random nodes and
// templates (PROPERTY_SEED replays a run): a dozen random nodes join the
// cluster's twenty (empty-valued role labels, hostnames that differ from the
// node name, NoSchedule and NoExecute taints, cordoned nodes), then each
// random DaemonSet (nodeName, nodeSelector, ORed and empty required terms,
// matchFields, Gt and Lt, tolerations with and without tolerationSeconds,
// host network or not) is created, and the number of nodes the webhook
// predicted must be the controller's desiredNumberScheduled.
//
// A ResourceQuota of zero pods keeps the controller from creating any: it
// counts the nodes that should run the pod all the same, and hundreds of
// DaemonSets' pods would take the local cluster minutes.
func TestPlacementEqualsTheController(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	rng := seed.Rand(t)
	cases := parityCases
	if v := os.Getenv("E2E_PARITY_CASES"); v != "" {
		var err error
		if cases, err = strconv.Atoi(v); err != nil {
			t.Fatalf("E2E_PARITY_CASES: %v", err)
		}
	}
	ns := c.namespace(t, "e2e-parity")
	_, err := c.client.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	joined := c.joinRandomNodes(t, placement.Nodes(rng, ns, 12, placement.Options{}), rng.IntN)
	nodes := c.listNodes(t)
	t.Logf("%d nodes, %d of them random", len(nodes), len(joined))

	type prediction struct {
		ds       *appsv1.DaemonSet
		eligible int
	}
	var predictions []prediction
	for i := range cases {
		spec := placement.Spec(rng, nodes, placement.Options{})
		ds := daemonSet(ns, fmt.Sprintf("parity-%03d", i), "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
			s := &ds.Spec.Template.Spec
			s.NodeName, s.NodeSelector, s.Affinity, s.Tolerations, s.HostNetwork = spec.NodeName, spec.NodeSelector, spec.Affinity, spec.Tolerations, spec.HostNetwork
		})
		created, eligible := c.create(t, ds)
		predictions = append(predictions, prediction{created, eligible})
	}

	t.Logf("created %d DaemonSets", cases)
	desired := map[string]int32{}
	NewWithT(t).Eventually(func(g Gomega) {
		list, err := c.client.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		for _, ds := range list.Items {
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation), "the controller has judged %s", ds.Name)
			desired[ds.Name] = ds.Status.DesiredNumberScheduled
		}
		g.Expect(desired).To(HaveLen(cases))
	}, 3*time.Minute, time.Second).Should(Succeed(), "the controller judges every DaemonSet")

	disagreements, none, all := 0, 0, 0
	for _, p := range predictions {
		switch p.eligible {
		case 0:
			none++
		case len(nodes):
			all++
		}
		if want := int(desired[p.ds.Name]); want != p.eligible {
			disagreements++
			template, _ := yaml.Marshal(p.ds.Spec.Template.Spec)
			t.Errorf("%s: the webhook predicted %d nodes, the controller wants %d pods\n%s", p.ds.Name, p.eligible, want, template)
		}
	}
	t.Logf("placement parity: %d cases (%d on no node, %d on every node, %d on some), %d disagreements", cases, none, all, cases-none-all, disagreements)
}

// joinRandomNodes creates the nodes, cordoning about a quarter of them, and
// waits until they settle as the controllers leave them: Ready (kwok plays
// their kubelets), with no taint but their own and, on cordoned nodes, the
// unschedulable taint the node lifecycle controller adds. It deletes them
// when the test ends.
func (c *cluster) joinRandomNodes(t *testing.T, nodes []*corev1.Node, intN func(int) int) []string {
	t.Helper()
	ctx := context.Background()
	want := map[string][]string{}
	var names []string
	for _, n := range nodes {
		n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake"}
		taints := n.Spec.Taints
		if intN(4) == 0 {
			n.Spec.Unschedulable = true
			taints = append(slices.Clone(taints), corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
		}
		want[n.Name] = taintStrings(taints)
		if _, err := c.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", n.Name, err)
		}
		names = append(names, n.Name)
		t.Cleanup(func() {
			if err := c.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting node %s: %v", n.Name, err)
			}
		})
	}
	NewWithT(t).Eventually(func(g Gomega) {
		for _, name := range names {
			n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(taintStrings(n.Spec.Taints)).To(Equal(want[name]), "taints of node %s", name)
			g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))), "node %s is Ready", name)
		}
	}, time.Minute, 250*time.Millisecond).Should(Succeed(), "the random nodes settle")
	// The webhook's inventory has them, with their settled taints, once it
	// answers for a template that tolerates everything and for one that
	// tolerates nothing as the nodes now listed say.
	listed := c.listNodes(t)
	for _, tolerations := range [][]corev1.Toleration{{{Operator: corev1.TolerationOpExists}}, nil} {
		probe := daemonSet(corev1.NamespaceDefault, "parity-probe", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Tolerations = tolerations
			ds.Annotations = map[string]string{"daemonset-guard.io/skip": "default-tolerations"}
		})
		want, err := inventory.New(listed...).Coverage(&probe.Spec.Template.Spec)
		if err != nil {
			t.Fatal(err)
		}
		NewWithT(t).Eventually(func() int { return c.predict(t, probe) }, 10*time.Second, 100*time.Millisecond).
			Should(Equal(want.Eligible), "the webhook sees every node as it is now")
	}
	return names
}

func (c *cluster) listNodes(t *testing.T) []*corev1.Node {
	t.Helper()
	list, err := c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	return nodes
}

func taintStrings(taints []corev1.Taint) []string {
	out := []string{}
	for _, t := range taints {
		out = append(out, t.ToString())
	}
	slices.Sort(out)
	return out
}
