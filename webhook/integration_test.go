package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// The integration tests run the webhooks in-process behind a real
// kube-apiserver and etcd (built by `make test` into bin/), registered with
// the webhook configurations of manifests/base.

type cluster struct {
	*testenv.Webhook
	policyFile string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, policyFile, policy.Warn)
	return &cluster{Webhook: testenv.StartWebhook(t, policyFile), policyFile: policyFile}
}

// writePolicy writes the README's policy with the given targets-nodes action.
func writePolicy(t *testing.T, path string, targetsNodes policy.Action) {
	t.Helper()
	p, err := policy.Load(filepath.Join("policy", "testdata", "example.yaml"), rules.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	p.Rules[rules.TargetsNodes].Action = targetsNodes
	doc, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestThroughTheAPIServer(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	g := NewWithT(t)
	testenv.CreateReadyNodes(t, c.Client,
		fixture.Node("cp-1", nil, fixture.ControlPlaneTaint),
		fixture.Node("ssd-1", []string{"disktype", "ssd"}),
		fixture.Node("ssd-2", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}),
	)
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logging"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	dsClient := c.Client.AppsV1().DaemonSets("logging")
	// The inventory learns of the nodes through its informer, asynchronously.
	g.Eventually(func() []string {
		_, err := dsClient.Create(ctx, fixture.Written("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		g.Expect(err).NotTo(HaveOccurred())
		return c.Warnings.Take()
	}, 10*time.Second, 100*time.Millisecond).Should(BeEmpty(), "the webhook should see the nodes")

	t.Run("a created DaemonSet comes back with the injected tolerations and rollout strategy", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := dsClient.Create(ctx, fixture.Written("fluentd"), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ds.Spec.Template.Spec.Tolerations).To(ConsistOf(corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}))
		g.Expect(ds.Spec.UpdateStrategy.Type).To(Equal(appsv1.RollingUpdateDaemonSetStrategyType))
		g.Expect(*ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable).To(Equal(intstr.FromString("10%")))
		g.Expect(ds.Spec.MinReadySeconds).To(BeEquivalentTo(10))
		g.Expect(ds.Annotations).To(HaveKeyWithValue("daemonset-guard.io/mutated", "default-tolerations,rolling-update-defaults"))
	})

	t.Run("a maxUnavailable that server-side apply says the user wrote is kept", func(t *testing.T) {
		g := NewWithT(t)
		applied := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"node-exporter"},"spec":{
			"selector":{"matchLabels":{"app":"node-exporter"}},"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}},
			"template":{"metadata":{"labels":{"app":"node-exporter"}},"spec":{"priorityClassName":"system-cluster-critical","containers":[{"name":"e","image":"%s"}]}}}}`, "prom/node-exporter:v1.8")
		ds, err := dsClient.Patch(ctx, "node-exporter", types.ApplyPatchType, []byte(applied), metav1.PatchOptions{FieldManager: "gitops"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable).To(Equal(intstr.FromInt32(1)), "the applier owns maxUnavailable")
		g.Expect(ds.Spec.MinReadySeconds).To(BeEquivalentTo(10), "minReadySeconds was not applied, so the policy's default is")
	})

	t.Run("an update that leaves the template alone never changes the template", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := dsClient.Create(ctx, fixture.Written("fluent-bit", func(ds *appsv1.DaemonSet) {
			ds.Annotations = map[string]string{"daemonset-guard.io/skip": "default-tolerations"}
		}), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ds.Spec.Template.Spec.Tolerations).To(BeEmpty())
		delete(ds.Annotations, "daemonset-guard.io/skip")
		ds.Labels = map[string]string{"team": "observability"}
		updated, err := dsClient.Update(ctx, ds, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(updated.Spec.Template.Spec.Tolerations).To(BeEmpty(), "adding a toleration would roll every pod")
		g.Expect(updated.Generation).To(Equal(ds.Generation), "the spec did not change")
	})

	t.Run("a selector change is refused, by the API server before the webhook", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := dsClient.Get(ctx, "fluentd", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		ds.Spec.Selector.MatchLabels["tier"] = "logging"
		ds.Spec.Template.Labels["tier"] = "logging"
		_, err = dsClient.Update(ctx, ds, metav1.UpdateOptions{})
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		// DESIGN.md §1: built-in validation runs before validating webhooks,
		// so the user sees the API server's message here and the webhook's
		// own message (handler tests) only where the API server lets it by.
		g.Expect(err.Error()).To(ContainSubstring("field is immutable"))
	})

	t.Run("a template whose labels the selector does not match is refused", func(t *testing.T) {
		g := NewWithT(t)
		_, err := dsClient.Create(ctx, fixture.Written("mismatch", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels = map[string]string{"app": "other"} }), metav1.CreateOptions{})
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("`selector` does not match template `labels`"))
	})

	t.Run("a DaemonSet that targets no node gets the warning with the reasons", func(t *testing.T) {
		g := NewWithT(t)
		_, err := dsClient.Create(ctx, fixture.Written("nvme-agent", withNodeSelector("disktype", "nvme")), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Warnings.Take()).To(ConsistOf(
			"[targets-nodes] spec.template.spec: the DaemonSet would run on no node: 0 of 4 nodes: 4 lack label disktype=nvme"))
	})

	t.Run("a node relabelled after start is seen by the next request", func(t *testing.T) {
		g := NewWithT(t)
		node, err := c.Client.CoreV1().Nodes().Get(ctx, "hdd-1", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		node.Labels["disktype"] = "nvme"
		_, err = c.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func() []string {
			_, err := dsClient.Create(ctx, fixture.Written("nvme-agent-2", withNodeSelector("disktype", "nvme")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			g.Expect(err).NotTo(HaveOccurred())
			return c.Warnings.Take()
		}, 10*time.Second, 50*time.Millisecond).Should(BeEmpty(), "hdd-1 now has disktype=nvme")
	})

	t.Run("a policy change to deny applies without restart", func(t *testing.T) {
		g := NewWithT(t)
		writePolicy(t, c.policyFile, policy.Deny)
		g.Eventually(func() error {
			_, err := dsClient.Create(ctx, fixture.Written("gpu-agent", withNodeSelector("gpu", "true")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}, 10*time.Second, 100*time.Millisecond).Should(MatchError(And(
			ContainSubstring(`admission webhook "validate.daemonset-guard.io" denied the request`),
			ContainSubstring("spec.template.spec: Forbidden: [targets-nodes] the DaemonSet would run on no node: 0 of 4 nodes: 4 lack label gpu=true"),
		)))
	})

	t.Run("an update that leaves placement alone stays possible under deny", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := dsClient.Get(ctx, "nvme-agent", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "none"}
		_, err = dsClient.Update(ctx, ds.DeepCopy(), metav1.UpdateOptions{})
		g.Expect(err).To(MatchError(ContainSubstring("[targets-nodes]")), "changing placement to no node is denied")
		ds.Labels = map[string]string{"team": "storage"}
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
		node, err := c.Client.CoreV1().Nodes().Get(ctx, "hdd-1", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		node.Labels["disktype"] = "hdd"
		_, err = c.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func() []string {
			_, err := dsClient.Update(ctx, ds, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			g.Expect(err).NotTo(HaveOccurred(), "a label change must not be refused because no node matches today")
			return c.Warnings.Take()
		}, 10*time.Second, 50*time.Millisecond).Should(ContainElement(ContainSubstring("would run on no node")))
	})

	t.Run("a maxUnavailable of 1 that an update sets is kept, as kubectl edit sets it", func(t *testing.T) {
		g := NewWithT(t)
		patch := []byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}}}}`)
		ds, err := dsClient.Patch(ctx, "fluentd", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable).To(Equal(intstr.FromInt32(1)), "the edit's value, not the policy's 10%")
	})

	t.Run("a replace without maxUnavailable keeps the API server's 1, which it records as the replace's", func(t *testing.T) {
		g := NewWithT(t)
		ds, err := dsClient.Patch(ctx, "fluentd", types.StrategicMergePatchType, []byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":"10%"}}}}`), metav1.PatchOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = nil
		replaced, err := dsClient.Update(ctx, ds, metav1.UpdateOptions{FieldManager: "kubectl-replace"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*replaced.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable).To(Equal(intstr.FromInt32(1)))
		var owner string
		for _, mf := range replaced.ManagedFields {
			if strings.Contains(string(mf.FieldsV1.GetRawBytes()), `"f:maxUnavailable"`) {
				owner = mf.Manager
			}
		}
		g.Expect(owner).To(Equal("kubectl-replace"), "the API server records the defaulted value as the replace's, exactly as it records an edit")
	})

	t.Run("every toleration shape a policy may hold is one the API server accepts in a template", func(t *testing.T) {
		g := NewWithT(t)
		doc := []byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules:\n  default-tolerations:\n    tolerations:\n" +
			"    - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n    - {key: dedicated, value: db}\n" +
			"    - {key: maintenance, operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n    - {key: spot, operator: Exists, effect: PreferNoSchedule}\n" +
			"    - {key: example.com/role_1.a, operator: Exists}\n    - {operator: Exists}\n")
		want, err := policy.Parse(doc, rules.Builtin())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(os.WriteFile(c.policyFile, doc, 0o600)).To(Succeed())
		g.Eventually(func() []corev1.Toleration {
			ds, err := dsClient.Create(ctx, fixture.Written("tolerant"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			g.Expect(err).NotTo(HaveOccurred(), "the API server accepts the injected tolerations")
			return ds.Spec.Template.Spec.Tolerations
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(policy.OptionsOf[*rules.DefaultTolerationsOptions](want, rules.DefaultTolerations).Tolerations))
		c.Warnings.Take()
	})
	g.Expect(strings.Join(c.Warnings.Take(), "\n")).To(BeEmpty(), "no warning should be left unchecked")
}

func withNodeSelector(key, value string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{key: value} }
}
