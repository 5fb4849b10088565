package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

func TestAuditReportsVerdictsAndLiveHealth(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig := startCluster(t)
	ctx := context.Background()

	for _, n := range []*corev1.Node{
		fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("ssd-2", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}), fixture.Node("hdd-2", []string{"disktype", "hdd"}),
	} {
		_, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	// There is no controller here: write the status it would write.
	create := func(ds *appsv1.DaemonSet, status appsv1.DaemonSetStatus) {
		t.Helper()
		created, err := client.AppsV1().DaemonSets("logging").Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		status.ObservedGeneration = created.Generation
		created.Status = status
		_, err = client.AppsV1().DaemonSets("logging").UpdateStatus(ctx, created, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	create(fixture.DaemonSet("stuck", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
	}), appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4, NumberReady: 3, UpdatedNumberScheduled: 2, NumberUnavailable: 1})
	create(fixture.DaemonSet("nowhere", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}), appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, NumberMisscheduled: 1})

	var out, errOut bytes.Buffer
	code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", "json"}, nil, &out, &errOut)
	g.Expect(code).To(Equal(exitAdmitted), "the built-in policy only warns about placement: %s", errOut.String())
	var report AuditReport
	g.Expect(json.Unmarshal(out.Bytes(), &report)).To(Succeed())
	g.Expect(report.Results).To(HaveLen(2))
	byName := map[string]AuditResult{}
	for _, r := range report.Results {
		byName[r.Name] = r
	}
	g.Expect(byName["stuck"].Health.Predicted).To(Equal(4), "tolerating everything, it runs on all four nodes")
	g.Expect(byName["stuck"].Health.Problems).To(ConsistOf("the rollout waits at its maxUnavailable limit: 2 of 4 pods updated, 1 unavailable"))
	g.Expect(byName["nowhere"].Health.Problems).To(ConsistOf(
		"the controller wants 1 pods, daemonset-guard predicts 0",
		"1 pods run on nodes that should not run them",
	))
	g.Expect(byName["nowhere"].Findings).To(ContainElement(HaveField("Message", ContainSubstring("would run on no node: 0 of 4 nodes"))))

	out.Reset()
	code = runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "--policy-file", readmePolicy}, nil, &out, &errOut)
	g.Expect(code).To(Equal(exitDenied), "the README's policy denies a DaemonSet that runs nowhere")
	g.Expect(out.String()).To(ContainSubstring("logging/nowhere (cluster): denied"))
	g.Expect(out.String()).To(ContainSubstring("health the rollout waits at its maxUnavailable limit"))
}

func TestAuditSaysTheClusterCannotBeReached(t *testing.T) {
	g := NewWithT(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, []byte(unreachableKubeconfig), 0o600)).To(Succeed())
	var out, errOut bytes.Buffer
	g.Expect(runAudit([]string{"--kubeconfig", kubeconfig}, nil, &out, &errOut)).To(Equal(exitUnevaluated), "an unreachable cluster leaves the answer incomplete, not the input wrong")
	g.Expect(errOut.String()).To(ContainSubstring("daemonset-guard audit: listing nodes:"))
	g.Expect(out.String()).To(BeEmpty())
}

// TestAuditReportsADaemonSetThatCannotBeEvaluatedAndJudgesTheOthers audits a
// cluster where one DaemonSet lists thousands of nodes by hostname, too much
// placement work to start: that DaemonSet is reported with its rule errors
// and a health problem, the other is judged as usual, and audit exits 3.
func TestAuditReportsADaemonSetThatCannotBeEvaluatedAndJudgesTheOthers(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig := startCluster(t)
	ctx := context.Background()
	// Each node its own hostname: a template that lists hostnames sees a
	// class per node.
	testenv.CreateReadyNodes(t, client, fixture.Cluster(200, 4)...)
	for _, ds := range []*appsv1.DaemonSet{
		fixture.DaemonSet("fluentd"),
		fixture.DaemonSet("pinned", func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Affinity = fixture.RequiredTerms(4000, corev1.LabelHostname, func(i int) string { return fmt.Sprintf("node-%05d", i) })
		}),
	} {
		_, err := client.AppsV1().DaemonSets("logging").Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}

	var out, errOut bytes.Buffer
	code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", "json"}, nil, &out, &errOut)
	g.Expect(code).To(Equal(exitUnevaluated), "stderr: %s", errOut.String())
	var report AuditReport
	g.Expect(json.Unmarshal(out.Bytes(), &report)).To(Succeed())
	byName := map[string]AuditResult{}
	for _, r := range report.Results {
		byName[r.Name] = r
	}
	g.Expect(byName).To(HaveLen(2))
	pinned, fluentd := byName["pinned"], byName["fluentd"]
	g.Expect(pinned.Verdict).To(Equal("admitted"), "the built-in policy's onError is allow")
	g.Expect(pinned.RuleErrors).To(ContainElement(And(HaveField("Rule", "targets-nodes"), HaveField("Message", ContainSubstring("placement is too expensive to check")))))
	g.Expect(pinned.Health.Problems).To(ContainElement(ContainSubstring("placement could not be predicted")))
	g.Expect(fluentd.RuleErrors).To(BeEmpty())
	g.Expect(fluentd.Coverage).NotTo(BeNil())
	g.Expect(fluentd.Coverage.Eligible).To(Equal(200), "the other DaemonSet is judged as usual")
}

// TestAuditFindsWorkloadsWhoseSelectorsOverlapADaemonSet audits a namespace
// where a Deployment's pods carry the labels a DaemonSet selects on: the
// DaemonSet is warned of the Deployment, and one with its own labels is not.
func TestAuditFindsWorkloadsWhoseSelectorsOverlapADaemonSet(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig := startCluster(t)
	ctx := context.Background()
	labels := map[string]string{"app": "logging"}
	_, err := client.AppsV1().Deployments("logging").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "log-aggregator"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "logging", "component": "aggregator"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "logging", "component": "aggregator"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "aggregator", Image: "fluent/fluentd:v1.17"}}},
			},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, ds := range []*appsv1.DaemonSet{
		fixture.DaemonSet("shipper", func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
			ds.Spec.Template.Labels = map[string]string{"app": "logging", "component": "shipper"}
		}),
		fixture.DaemonSet("node-exporter"),
	} {
		_, err := client.AppsV1().DaemonSets("logging").Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}

	var out, errOut bytes.Buffer
	runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", "json"}, nil, &out, &errOut)
	var report AuditReport
	g.Expect(json.Unmarshal(out.Bytes(), &report)).To(Succeed(), "stderr: %s", errOut.String())
	overlaps := map[string][]string{}
	for _, r := range report.Results {
		for _, f := range r.Findings {
			if f.Rule == "selector-overlap" {
				overlaps[r.Name] = append(overlaps[r.Name], f.Message)
			}
		}
	}
	g.Expect(overlaps).To(HaveKeyWithValue("shipper", ConsistOf(HavePrefix("its selector (app=logging) selects the pods of Deployment log-aggregator:"))))
	g.Expect(overlaps).NotTo(HaveKey("node-exporter"))
}

// TestAuditReportsProgressOnStderr audits more DaemonSets than one progress
// step: stderr says how far it got, stdout holds only the report.
func TestAuditReportsProgressOnStderr(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig := startCluster(t)
	ctx := context.Background()
	for i := range progressEvery + 1 {
		_, err := client.AppsV1().DaemonSets("logging").Create(ctx, fixture.DaemonSet(fmt.Sprintf("agent-%03d", i)), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	var out, errOut bytes.Buffer
	runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", "json"}, nil, &out, &errOut)
	g.Expect(errOut.String()).To(Equal(fmt.Sprintf("daemonset-guard audit: judged %d of %d DaemonSets\n", progressEvery, progressEvery+1)))
	var report AuditReport
	g.Expect(json.Unmarshal(out.Bytes(), &report)).To(Succeed())
	g.Expect(report.Results).To(HaveLen(progressEvery + 1))
}
