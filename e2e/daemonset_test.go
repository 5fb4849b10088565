//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

const controlPlaneTaint = "node-role.kubernetes.io/control-plane"

var controlPlaneToleration = corev1.Toleration{Key: controlPlaneTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

func TestLogCollectorRunsOnEveryNodeItTolerates(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-logging")
	ds, want := c.create(t, daemonSet(ns, "fluentd-elasticsearch", "quay.io/fluentd_elasticsearch/fluentd:v5.0.1", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{controlPlaneToleration}
	}))
	ds = c.settled(t, ds, want)
	// Every node but those with a taint the collector does not tolerate.
	expected := c.nodes(t, func(n corev1.Node) bool {
		return !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key != controlPlaneTaint && t.Effect != corev1.TaintEffectPreferNoSchedule
		})
	})
	g := NewWithT(t)
	g.Expect(c.nodesOf(t, ds)).To(Equal(expected), "one pod on each tolerated node")
	g.Expect(expected).To(ContainElements(c.nodes(t, func(n corev1.Node) bool { _, ok := n.Labels[controlPlaneTaint]; return ok })), "control-plane nodes included")
	g.Expect(want).To(Equal(len(expected)), "the webhook's prediction equals the controller's desiredNumberScheduled")
}

func TestTaintedNodeRunsOnlyDaemonSetsThatTolerateIt(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-taints")
	tainted := c.nodes(t, func(n corev1.Node) bool { return withLabel("disktype", "ssd")(n) && len(n.Spec.Taints) == 0 })[0]
	c.updateNode(t, tainted, func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "taintKey", Value: "taintValue", Effect: corev1.TaintEffectNoSchedule})
	})
	g := NewWithT(t)

	plain, wantPlain := c.create(t, daemonSet(ns, "untolerating", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Annotations = map[string]string{"daemonset-guard.io/skip": "default-tolerations"}
	}))
	plain = c.settled(t, plain, wantPlain)
	g.Expect(c.nodesOf(t, plain)).NotTo(ContainElement(tainted), "no pod on the node whose taint it does not tolerate")

	defaulted, wantDefaulted := c.create(t, daemonSet(ns, "defaulted", "registry.k8s.io/pause:3.10"))
	g.Expect(defaulted.Spec.Template.Spec.Tolerations).To(ContainElement(HaveField("Key", "taintKey")), "the policy's toleration was injected")
	defaulted = c.settled(t, defaulted, wantDefaulted)
	g.Expect(c.nodesOf(t, defaulted)).To(ContainElement(tainted), "the injected toleration lets it run on the tainted node")
	g.Expect(wantDefaulted).To(Equal(wantPlain+1), "the prediction counts the tainted node only for the tolerating DaemonSet")
}

func TestNodeSelectorFollowsRelabelling(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-selector")
	g := NewWithT(t)
	ds, want := c.create(t, daemonSet(ns, "ssd-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	}))
	ds = c.settled(t, ds, want)
	for _, node := range c.nodesOf(t, ds) {
		n, err := c.client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n.Labels).To(HaveKeyWithValue("disktype", "ssd"), "pods only on labelled nodes")
	}
	relabelled := c.nodesOf(t, ds)[0]
	c.updateNode(t, relabelled, func(n *corev1.Node) { n.Labels["disktype"] = "hdd" })
	ds = c.settled(t, ds, want-1)
	g.Expect(c.nodesOf(t, ds)).NotTo(ContainElement(relabelled), "the controller removed the pod from the relabelled node")
	g.Eventually(func() int { return c.predict(t, ds) }, 10*time.Second, 200*time.Millisecond).Should(Equal(want-1), "the webhook's next answer reflects the relabel")
}

func TestRequiredNodeAffinityPredictionEqualsTheController(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-affinity")
	affinity := func(term corev1.NodeSelectorTerm) func(*appsv1.DaemonSet) {
		return func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}},
			}}
		}
	}
	for name, term := range map[string]corev1.NodeSelectorTerm{
		"zones": {MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"zone-1", "zone-2"}},
			{Key: "disktype", Operator: corev1.NodeSelectorOpExists},
		}},
		// The API server allows one value per matchFields requirement.
		"names": {
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{c.nodes(t, withLabel("disktype", "hdd"))[0]}}},
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disktype", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ds, want := c.create(t, daemonSet(ns, name, "registry.k8s.io/pause:3.10", affinity(term)))
			NewWithT(t).Expect(want).To(BeNumerically(">", 0))
			c.settled(t, ds, want)
		})
	}
}

func TestDaemonSetTargetingNoNodeIsReportedWithReasons(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-nowhere")
	c.warnings.Take()
	_, err := c.client.AppsV1().DaemonSets(ns).Create(context.Background(), daemonSet(ns, "nvme-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}), metav1.CreateOptions{})
	g := NewWithT(t)
	if err != nil {
		// A policy that denies says the same thing as the warning.
		g.Expect(err.Error()).To(MatchRegexp(`\[targets-nodes\] the DaemonSet would run on no node: 0 of \d+ nodes: \d+ lack label disktype=nvme`))
		return
	}
	g.Expect(c.warnings.Take()).To(ContainElement(MatchRegexp(`^\[targets-nodes\] spec.template.spec: the DaemonSet would run on no node: 0 of \d+ nodes: \d+ lack label disktype=nvme`)))
}

func TestRollingUpdateObeysTheInjectedMaxUnavailable(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-rollout")
	g := NewWithT(t)
	ds, want := c.create(t, daemonSet(ns, "httpd", "httpd:2.4.62"))
	g.Expect(ds.Annotations["daemonset-guard.io/mutated"]).To(ContainSubstring("rolling-update-defaults"), "the webhook set the rollout defaults")
	maxUnavailable, err := rules.MaxUnavailable(ds, want)
	g.Expect(err).NotTo(HaveOccurred())
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	g.Expect(maxUnavailable).To(BeNumerically(">", 1), "the injected maxUnavailable differs from the API default of 1")
	g.Expect(minReady).To(BeNumerically(">", 0), "the injected minReadySeconds")
	ds = c.settled(t, ds, want)
	targets := c.nodesOf(t, ds)
	// Let every pod become available before the rollout starts.
	g.Eventually(func() int { return unavailable(c.pods(t, ds), targets, minReady, time.Now()) }, 30*time.Second, 250*time.Millisecond).Should(BeZero())

	start := time.Now()
	c.updateDaemonSet(t, ds, func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "httpd:2.4.63" })

	rollout := make(chan string, 1)
	go func() {
		out, err := runKubectl("rollout", "status", "daemonset/httpd", "-n", ns, "--timeout=180s")
		if err != nil {
			out = "error: " + err.Error() + "\n" + out
		}
		rollout <- out
	}()
	worst := 0
	var done string
	for done == "" {
		select {
		case done = <-rollout:
		case <-time.After(200 * time.Millisecond):
			n := unavailable(c.pods(t, ds), targets, minReady, time.Now())
			worst = max(worst, n)
			g.Expect(n).To(BeNumerically("<=", maxUnavailable), "unavailable daemon pods during the rollout")
		}
	}
	took := time.Since(start)
	g.Expect(done).To(ContainSubstring("successfully rolled out"))
	g.Expect(worst).To(BeNumerically(">", 0), "the sampling saw the rollout take pods down")
	steps := (want + maxUnavailable - 1) / maxUnavailable
	g.Expect(took).To(BeNumerically(">=", time.Duration(steps-1)*minReady), "each of %d steps waits minReadySeconds", steps)
	t.Logf("rolled %d pods in %d steps of at most %d in %v; at most %d unavailable seen", want, steps, maxUnavailable, took.Round(time.Second), worst)
}

func TestSelectorChangesAndMismatchesAreRefused(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-refusals")
	ctx := context.Background()
	g := NewWithT(t)
	ds, _ := c.create(t, daemonSet(ns, "exporter", "prom/node-exporter:v1.8.2"))

	ds.Spec.Selector.MatchLabels["tier"] = "monitoring"
	ds.Spec.Template.Labels["tier"] = "monitoring"
	_, err := c.client.AppsV1().DaemonSets(ns).Update(ctx, ds, metav1.UpdateOptions{})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	// The API server refuses before validating webhooks run (DESIGN.md §1).
	g.Expect(err.Error()).To(ContainSubstring("spec.selector: Invalid value"))
	g.Expect(err.Error()).To(ContainSubstring("field is immutable"))

	_, err = c.client.AppsV1().DaemonSets(ns).Create(ctx, daemonSet(ns, "mismatch", "prom/node-exporter:v1.8.2", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Labels = map[string]string{"app": "something-else"}
	}), metav1.CreateOptions{})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.template.metadata.labels: Invalid value"))
	g.Expect(err.Error()).To(ContainSubstring("`selector` does not match template `labels`"))
}

func TestOrphanedPodsAreAdoptedByANewDaemonSet(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-adoption")
	g := NewWithT(t)
	ds, want := c.create(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	ds = c.settled(t, ds, want)
	before := c.pods(t, ds)

	kubectl(t, "delete", "daemonset/agent", "-n", ns, "--cascade=orphan")
	g.Eventually(func() error {
		_, err := c.client.AppsV1().DaemonSets(ns).Get(context.Background(), "agent", metav1.GetOptions{})
		return err
	}, 30*time.Second).Should(Satisfy(apierrors.IsNotFound))
	g.Consistently(func() int { return len(c.pods(t, ds)) }, 3*time.Second, 500*time.Millisecond).Should(Equal(len(before)), "orphaned pods stay")

	adopter, _ := c.create(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	g.Eventually(func(g Gomega) {
		for _, p := range c.pods(t, adopter) {
			g.Expect(p.OwnerReferences).To(ContainElement(HaveField("UID", adopter.UID)), "pod %s is owned by the new DaemonSet", p.Name)
		}
	}, 60*time.Second, 500*time.Millisecond).Should(Succeed())
	g.Expect(uids(c.pods(t, adopter))).To(ConsistOf(uids(before)), "the same pods, adopted, not replaced")
}

func TestANewNodeGetsAPodAndThePredictionFollows(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-new-node")
	g := NewWithT(t)
	ds, want := c.create(t, daemonSet(ns, "ssd-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	}))
	c.settled(t, ds, want)

	requireKwok(t, c)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "ssd-new",
		Labels:      map[string]string{"disktype": "ssd", "kubernetes.io/hostname": "ssd-new", "type": "kwok"},
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
	}}
	_, err := c.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := c.client.CoreV1().Nodes().Delete(context.Background(), "ssd-new", metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting node ssd-new: %v", err)
		}
	})
	ds = c.settled(t, ds, want+1)
	g.Expect(c.nodesOf(t, ds)).To(ContainElement("ssd-new"))
	g.Eventually(func() int { return c.predict(t, ds) }, 10*time.Second, 200*time.Millisecond).Should(Equal(want + 1))
}

func TestMetadataUpdateRollsNothingAfterThePolicyChanged(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-no-rollout")
	ctx := context.Background()
	g := NewWithT(t)
	ds, want := c.create(t, daemonSet(ns, "agent", "registry.k8s.io/pause:3.10"))
	ds = c.settled(t, ds, want)
	pods := c.pods(t, ds)

	changePolicy(t, func(p map[string]any) {
		// The shipped policy may configure neither rules nor tolerations.
		configured, _ := p["rules"].(map[string]any)
		if configured == nil {
			configured = map[string]any{}
			p["rules"] = configured
		}
		injected, _ := configured["default-tolerations"].(map[string]any)
		if injected == nil {
			injected = map[string]any{}
			configured["default-tolerations"] = injected
		}
		tolerations, _ := injected["tolerations"].([]any)
		injected["tolerations"] = append(tolerations, map[string]any{"key": "e2e-policy-change", "operator": "Exists"})
	})
	g.Eventually(func() []corev1.Toleration {
		probe := daemonSet(ns, "probe", "registry.k8s.io/pause:3.10")
		created, err := c.client.AppsV1().DaemonSets(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		g.Expect(err).NotTo(HaveOccurred())
		return created.Spec.Template.Spec.Tolerations
	}, 90*time.Second, 500*time.Millisecond).Should(ContainElement(HaveField("Key", "e2e-policy-change")), "the new policy is in force")

	updated := c.updateDaemonSet(t, ds, func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "platform"} })
	g.Expect(updated.Spec.Template.Spec.Tolerations).NotTo(ContainElement(HaveField("Key", "e2e-policy-change")), "the template was left alone")
	g.Expect(updated.Generation).To(Equal(ds.Generation), "the spec did not change")
	g.Consistently(func() []corev1.Pod { return c.pods(t, ds) }, 5*time.Second, 500*time.Millisecond).Should(HaveLen(len(pods)))
	g.Expect(uids(c.pods(t, ds))).To(ConsistOf(uids(pods)), "no pod was replaced")
}

// changePolicy edits the webhook's policy and restores it when the test ends.
func changePolicy(t *testing.T, change func(map[string]any)) {
	t.Helper()
	read, write := policyAccess(t)
	original := read()
	var p map[string]any
	if err := yaml.Unmarshal(original, &p); err != nil {
		t.Fatalf("reading the policy: %v", err)
	}
	change(p)
	changed, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	write(changed)
	t.Cleanup(func() { write(original) })
}

// policyAccess reads and writes the policy where the webhook reads it: a file
// on the host, or a ConfigMap that the kubelet projects into its pods.
func policyAccess(t *testing.T) (read func() []byte, write func([]byte)) {
	if path := os.Getenv("E2E_POLICY_FILE"); path != "" {
		return func() []byte {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return data
			}, func(data []byte) {
				tmp := path + ".e2e"
				if err := os.WriteFile(tmp, data, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, path); err != nil {
					t.Fatal(err)
				}
			}
	}
	ref := os.Getenv("E2E_POLICY_CONFIGMAP")
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		t.Fatal("set E2E_POLICY_FILE (webhook on the host) or E2E_POLICY_CONFIGMAP=namespace/name (webhook in the cluster)")
	}
	cms := connect(t).client.CoreV1().ConfigMaps(ns)
	const key = "policy.yaml"
	return func() []byte {
			cm, err := cms.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return []byte(cm.Data[key])
		}, func(data []byte) {
			patch := fmt.Appendf(nil, `{"data":{%q:%q}}`, key, data)
			if _, err := cms.Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
}

// withLabel selects nodes with the label.
func withLabel(key, value string) func(corev1.Node) bool {
	return func(n corev1.Node) bool { return n.Labels[key] == value }
}

func uids(pods []corev1.Pod) []types.UID {
	out := make([]types.UID, len(pods))
	for i, p := range pods {
		out[i] = p.UID
	}
	return out
}
