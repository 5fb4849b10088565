package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// TestAuditPrintsOpenReportsTheAPIServerAccepts audits a namespace into
// openreports.io/v1alpha1 Reports and applies them, server-side, to an API
// server that has the CRDs of the published reports-api module: they are
// valid against its schema, one per DaemonSet, scoped to it, with a result
// per rule and the summary of those.
func TestAuditPrintsOpenReportsTheAPIServerAccepts(t *testing.T) {
	g := NewWithT(t)
	crds := testenv.ReportsCRDs(t)
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
	code := runAudit([]string{"--kubeconfig", kubeconfig, "-n", "logging", "-o", "openreports", "--policy-file", readmePolicy}, nil, &stdout, &stderr)
	g.Expect(code).To(Equal(exitDenied), "the README's policy denies a DaemonSet that runs nowhere: %s", stderr.String())

	dyn := dynamic.NewForConfigOrDie(cfg)
	reportsAPI := openreports.SchemeGroupVersion.WithResource("reports")
	byScope := map[string]openreports.Report{}
	dec := yaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		var report openreports.Report
		if err := dec.Decode(&report); err != nil {
			break
		}
		body, err := json.Marshal(&report)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = dyn.Resource(reportsAPI).Namespace(report.Namespace).Patch(ctx, report.Name, types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "daemonset-guard", Force: new(true)})
		g.Expect(err).NotTo(HaveOccurred(), "the API server accepts the Report of %s", report.Scope.Name)
		byScope[report.Scope.Name] = report
	}
	g.Expect(byScope).To(HaveLen(2))
	nowhere := byScope["nowhere"]
	g.Expect(nowhere.Source).To(Equal("daemonset-guard"))
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
	ds, err := client.AppsV1().DaemonSets("logging").Create(ctx, fixture.DaemonSet("agent", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

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

	bareClient, bareKubeconfig := startCluster(t)
	_, err = bareClient.AppsV1().DaemonSets("logging").Create(ctx, fixture.DaemonSet("agent"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var stdout, stderr bytes.Buffer
	code := runAudit([]string{"--kubeconfig", bareKubeconfig, "-n", "logging", "--write-reports"}, nil, &stdout, &stderr)
	g.Expect(code).To(Equal(exitUnevaluated))
	g.Expect(stderr.String()).To(ContainSubstring("the cluster has no openreports.io/v1alpha1 Reports: install the CRDs of github.com/openreports/reports-api"))
}
