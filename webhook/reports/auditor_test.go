package reports_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	policyreport "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	. "github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestTheAuditorKeepsEachDaemonSetsReportCurrent runs the leader's auditor
// against a real API server with the CRDs of each report format, from the
// modules that publish them: it writes a report per DaemonSet in the format
// it is given, and the next round follows a change of the DaemonSet.
func TestTheAuditorKeepsEachDaemonSetsReportCurrent(t *testing.T) {
	for _, tc := range []struct {
		format   reports.Format
		crds     func(testing.TB) string
		resource schema.GroupVersionResource
	}{
		{reports.OpenReports, testenv.ReportsCRDs, openreports.SchemeGroupVersion.WithResource("reports")},
		{reports.PolicyReport, testenv.PolicyReportCRDs, policyreport.SchemeGroupVersion.WithResource("policyreports")},
	} {
		t.Run(string(tc.format), func(t *testing.T) { testAuditorKeepsReportsCurrent(t, tc.format, tc.crds(t), tc.resource) })
	}
}

func testAuditorKeepsReportsCurrent(t *testing.T, format reports.Format, crds string, resource schema.GroupVersionResource) {
	g := NewWithT(t)
	env := testenv.StartEnvironment(t, &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true})
	ctx := context.Background()
	client := kubernetes.NewForConfigOrDie(env.Config)
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logging"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	ds, err := client.AppsV1().DaemonSets("logging").Create(ctx, fixture.DaemonSet("agent", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	catalog := rules.Builtin()
	nodes := inventory.New(fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("ssd-2", []string{"disktype", "ssd"}))
	reportsClient := dynamic.NewForConfigOrDie(env.Config)
	auditor := &reports.Auditor{Interval: 200 * time.Millisecond, Client: client, Reports: reportsClient, Format: format, Ready: func() bool { return true }, Log: testr.New(t),
		Evaluator: func() offline.Evaluator {
			return offline.Evaluator{Rules: catalog, Policy: policy.Default(catalog), Nodes: nodes}
		}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- auditor.Start(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("auditor: %v", err)
		}
	})

	targetsNodes := func() openreports.ReportResult {
		u, err := reportsClient.Resource(resource).Namespace("logging").Get(ctx, string(ds.UID), metav1.GetOptions{})
		if err != nil {
			return openreports.ReportResult{}
		}
		// The two formats share their results' fields, so either reads as
		// a Report.
		var report openreports.Report
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &report)).To(Succeed())
		for _, r := range report.Results {
			if r.Rule == rules.TargetsNodes {
				return r
			}
		}
		return openreports.ReportResult{}
	}
	g.Eventually(targetsNodes, 10*time.Second, 100*time.Millisecond).Should(And(HaveField("Result", BeEquivalentTo("warn")),
		HaveField("Description", ContainSubstring("would run on no node: 0 of 2 nodes"))))

	live, err := client.AppsV1().DaemonSets("logging").Get(ctx, "agent", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	live.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	_, err = client.AppsV1().DaemonSets("logging").Update(ctx, live, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(targetsNodes, 10*time.Second, 100*time.Millisecond).Should(And(HaveField("Result", BeEquivalentTo("pass")),
		HaveField("Properties", HaveKeyWithValue("eligibleNodes", "2"))), "the next round follows the change")
}
