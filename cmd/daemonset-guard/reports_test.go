package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	policyreport "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	. "github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
)

// TestAuditPrintsReportsTheAPIServerAccepts audits a namespace into
// openreports.io/v1alpha1 Reports, and into wgpolicyk8s.io/v1alpha2
// PolicyReports, and applies them, server-side with strict field
// validation, to an API server that has the CRDs the published modules
// ship: they are valid against their schema, one per DaemonSet, scoped to
// it, with a result per rule and the summary of those.
func TestAuditPrintsReportsTheAPIServerAccepts(t *testing.T) {
	for _, tc := range []struct {
		format   reports.Format
		crds     func(testing.TB) string
		resource schema.GroupVersionResource
		kind     string
	}{
		{reports.OpenReports, testenv.ReportsCRDs, openreports.SchemeGroupVersion.WithResource("reports"), "openreports.io/v1alpha1 Report"},
		{reports.PolicyReport, testenv.PolicyReportCRDs, policyreport.SchemeGroupVersion.WithResource("policyreports"), "wgpolicyk8s.io/v1alpha2 PolicyReport"},
	} {
		t.Run(string(tc.format), func(t *testing.T) { testAuditPrintsReports(t, tc.format, tc.crds(t), tc.resource, tc.kind) })
	}
}

func testAuditPrintsReports(t *testing.T, format reports.Format, crds string, resource schema.GroupVersionResource, kind string) {
	g := NewWithT(t)
	client, kubeconfig, cfg := startEnvironment(t, &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true})
	ctx := context.Background()
	testenv.CreateReadyNodes(t, client,
		fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("ssd-2", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}), fixture.Node("hdd-2", []string{"disktype", "hdd"}))
	for _, ds := range []*appsv1.DaemonSet{
		fixture.DaemonSet("fluentd"),
		fixture.DaemonSet("nowhere", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"} }),
	} {
		_, err := client.AppsV1().DaemonSets("logging").Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}

	var stdout, stderr bytes.Buffer
	code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", string(format), "--policy-file", readmePolicy}, nil, &stdout, &stderr)
	g.Expect(code).To(Equal(exitDenied), "the README's policy denies a DaemonSet that runs nowhere: %s", stderr.String())

	dyn := dynamic.NewForConfigOrDie(cfg)
	byScope := map[string]openreports.Report{}
	dec := yaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		g.Expect(fmt.Sprint(doc["apiVersion"], " ", doc["kind"])).To(Equal(kind))
		body, err := json.Marshal(doc)
		g.Expect(err).NotTo(HaveOccurred())
		u, err := dyn.Resource(resource).Namespace("logging").Patch(ctx, fmt.Sprint(doc["metadata"].(map[string]any)["name"]), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "daemonset-guard", Force: new(true), FieldValidation: "Strict"})
		g.Expect(err).NotTo(HaveOccurred(), "the API server accepts the report")
		// The two APIs share their results' fields, so either reads as a
		// Report.
		var report openreports.Report
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &report)).To(Succeed())
		byScope[report.Scope.Name] = report
	}
	g.Expect(byScope).To(HaveLen(2))
	nowhere := byScope["nowhere"]
	if format == reports.OpenReports {
		g.Expect(nowhere.Source).To(Equal("daemonset-guard"))
	}
	g.Expect(nowhere.Results).To(HaveEach(HaveField("Source", "daemonset-guard")))
	g.Expect(nowhere.Scope).To(And(HaveField("Kind", "DaemonSet"), HaveField("Namespace", "logging")))
	results := map[string]openreports.ReportResult{}
	for _, r := range nowhere.Results {
		results[r.Rule] = r
	}
	g.Expect(results["targets-nodes"]).To(And(HaveField("Result", BeEquivalentTo("fail")),
		HaveField("Description", ContainSubstring("would run on no node: 0 of 4 nodes")),
		HaveField("Properties", And(HaveKeyWithValue("eligibleNodes", "0"), HaveKeyWithValue("totalNodes", "4")))))
	g.Expect(results["selector-immutable"].Result).To(BeEquivalentTo("pass"))
	g.Expect(nowhere.Summary.Fail).To(BeNumerically(">=", 1))
	g.Expect(nowhere.Summary.Pass + nowhere.Summary.Fail + nowhere.Summary.Warn + nowhere.Summary.Error + nowhere.Summary.Skip).To(Equal(len(nowhere.Results)))
	g.Expect(byScope["fluentd"].Results).To(ContainElement(And(HaveField("Rule", "targets-nodes"), HaveField("Result", BeEquivalentTo("pass")))))
	g.Expect(byScope["fluentd"].Results).To(ContainElement(And(HaveField("Rule", "default-tolerations"), HaveField("Result", BeEquivalentTo("warn")),
		HaveField("Description", HavePrefix("the mutating webhook would change this DaemonSet if it were created today")))),
		"the README's policy injects a toleration fluentd lacks")
}

// TestAuditWritesReportsAndUpdatesThem writes the Reports into the cluster,
// owned by their DaemonSets, and replaces a Report's results when the next
// audit finds otherwise; without the CRDs it says what to install.
func TestAuditWritesReportsAndUpdatesThem(t *testing.T) {
	g := NewWithT(t)
	crds := testenv.ReportsCRDs(t)
	client, kubeconfig, cfg := startEnvironment(t, &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true})
	ctx := context.Background()
	testenv.CreateReadyNodes(t, client, fixture.Node("ssd-1", []string{"disktype", "ssd"}))
	ds := createAgentOnNoNode(t, client)

	result := func() openreports.ReportResult {
		var stdout, stderr bytes.Buffer
		code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "--write-reports", "-o", "json"}, nil, &stdout, &stderr)
		g.Expect(code).To(BeNumerically("<=", exitDenied), "stderr: %s", stderr.String())
		u, err := dynamic.NewForConfigOrDie(cfg).Resource(openreports.SchemeGroupVersion.WithResource("reports")).Namespace("logging").Get(ctx, string(ds.UID), metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "the Report is named by the DaemonSet's UID")
		var report openreports.Report
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &report)).To(Succeed())
		g.Expect(report.OwnerReferences).To(ConsistOf(And(HaveField("Kind", "DaemonSet"), HaveField("UID", ds.UID))), "the Report goes with its DaemonSet")
		for _, r := range report.Results {
			if r.Rule == "targets-nodes" {
				return r
			}
		}
		t.Fatal("no targets-nodes result")
		return openreports.ReportResult{}
	}
	g.Expect(result().Result).To(BeEquivalentTo("warn"), "the built-in policy warns of a DaemonSet that runs nowhere")

	live, err := client.AppsV1().DaemonSets("logging").Get(ctx, "agent", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	live.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	_, err = client.AppsV1().DaemonSets("logging").Update(ctx, live, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result()).To(And(HaveField("Result", BeEquivalentTo("pass")), HaveField("Properties", HaveKeyWithValue("eligibleNodes", "1"))),
		"the next audit replaces the result")

	g.Expect(writeReportsWithoutCRDs(t)).To(ContainSubstring("the cluster has no openreports.io/v1alpha1 Reports: install the CRDs of github.com/openreports/reports-api"))
}

// TestAuditWritesPolicyReports writes wgpolicyk8s.io/v1alpha2 PolicyReports
// where the cluster has their CRDs, owned by their DaemonSets; without the
// CRDs it says what to install.
func TestAuditWritesPolicyReports(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig, cfg := startEnvironment(t, &envtest.Environment{CRDDirectoryPaths: []string{testenv.PolicyReportCRDs(t)}, ErrorIfCRDPathMissing: true})
	ctx := context.Background()
	testenv.CreateReadyNodes(t, client, fixture.Node("ssd-1", []string{"disktype", "ssd"}))
	ds := createAgentOnNoNode(t, client)
	var stdout, stderr bytes.Buffer
	code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "--write-reports", "--report-format", "policyreport"}, nil, &stdout, &stderr)
	g.Expect(code).To(BeNumerically("<=", exitDenied), "stderr: %s", stderr.String())
	u, err := dynamic.NewForConfigOrDie(cfg).Resource(policyreport.SchemeGroupVersion.WithResource("policyreports")).Namespace("logging").Get(ctx, string(ds.UID), metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "the PolicyReport is named by the DaemonSet's UID")
	var report policyreport.PolicyReport
	g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &report)).To(Succeed())
	g.Expect(report.OwnerReferences).To(ConsistOf(And(HaveField("Kind", "DaemonSet"), HaveField("UID", ds.UID))), "the PolicyReport goes with its DaemonSet")
	g.Expect(report.Results).To(ContainElement(And(HaveField("Rule", "targets-nodes"), HaveField("Result", policyreport.StatusWarn),
		HaveField("Message", ContainSubstring("would run on no node")))))

	g.Expect(writeReportsWithoutCRDs(t, "--report-format", "policyreport")).To(ContainSubstring("the cluster has no wgpolicyk8s.io/v1alpha2 PolicyReports: install their CRDs"))
}

// createAgentOnNoNode creates a DaemonSet in namespace logging that selects
// nodes with disktype nvme.
func createAgentOnNoNode(t *testing.T, client kubernetes.Interface) *appsv1.DaemonSet {
	t.Helper()
	ds, err := client.AppsV1().DaemonSets("logging").Create(context.Background(), fixture.DaemonSet("agent", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// writeReportsWithoutCRDs runs audit --write-reports with args on a cluster
// without report CRDs, expects it to fail as unevaluated, and returns what
// it said.
func writeReportsWithoutCRDs(t *testing.T, args ...string) string {
	t.Helper()
	client, kubeconfig := startCluster(t)
	createAgentOnNoNode(t, client)
	var stdout, stderr bytes.Buffer
	if code := runAudit(append([]string{"--kubeconfig", kubeconfig, "-n", "logging", "--write-reports"}, args...), nil, &stdout, &stderr); code != exitUnevaluated {
		t.Errorf("audit --write-reports without the CRDs exited %d, want %d", code, exitUnevaluated)
	}
	return stderr.String()
}
