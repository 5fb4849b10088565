//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
)

// cliReport is the part of check's and audit's JSON reports these tests read.
type cliReport struct {
	Results []offline.Result `json:"results"`
}

// TestCheckJudgesAFileAsAnUpdateOfTheLiveObjectAndTheControllerAgrees runs
// `daemonset-guard check --kubeconfig` on a file that moves a running
// DaemonSet from one pool of nodes to another: it is judged as an update
// of the live object, whose finding names the nodes that lose and gain a
// pod; applied, the controller moves the pods from and to exactly those.
func TestCheckJudgesAFileAsAnUpdateOfTheLiveObjectAndTheControllerAgrees(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-check")
	g := NewWithT(t)
	// Two pools of two untainted nodes, few enough that the finding names
	// every node.
	untainted := c.nodes(t, func(n corev1.Node) bool { return len(n.Spec.Taints) == 0 })
	g.Expect(len(untainted)).To(BeNumerically(">=", 4))
	for i, name := range untainted[:4] {
		c.updateNode(t, name, func(n *corev1.Node) { n.Labels["e2e-check"] = ns + "-" + string(rune('a'+i%2)) })
	}
	onA := daemonSet(ns, "disk-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"e2e-check": ns + "-a"}
	})
	ds, want := c.create(t, onA)
	g.Expect(want).To(Equal(2))
	ds = c.settled(t, ds, want)
	before := c.nodesOf(t, ds)

	onB := onA.DeepCopy()
	onB.APIVersion, onB.Kind = "apps/v1", "DaemonSet"
	onB.Spec.Template.Spec.NodeSelector = map[string]string{"e2e-check": ns + "-b"}
	file := filepath.Join(t.TempDir(), "disk-agent.yaml")
	data, err := yaml.Marshal(onB)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(file, data, 0o600)).To(Succeed())
	out, _ := daemonsetGuard(t, "check", "--kubeconfig", os.Getenv("KUBECONFIG"), "-f", file, "-o", "json")
	var report cliReport
	g.Expect(json.Unmarshal(out, &report)).To(Succeed(), "check's report: %s", out)
	g.Expect(report.Results).To(HaveLen(1))
	res := report.Results[0]
	g.Expect(res.Operation).To(BeEquivalentTo("UPDATE"), "the file is judged as an update of the live DaemonSet")
	var moved string
	for _, f := range res.Findings {
		if f.Rule == "targets-nodes" && strings.Contains(f.Message, "would lose") {
			moved = f.Message
		}
	}
	g.Expect(moved).NotTo(BeEmpty(), "check names the nodes the update moves pods from and to: %+v", res.Findings)
	lost, gained := movedNodes(t, moved)

	ds = c.updateDaemonSet(t, ds, func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = onB.Spec.Template.Spec.NodeSelector })
	ds = c.settled(t, ds, len(gained))
	after := c.nodesOf(t, ds)
	g.Expect(lost).To(ConsistOf(without(before, after)), "the nodes that lost their pod")
	g.Expect(gained).To(ConsistOf(without(after, before)), "the nodes that gained one")
}

// TestAuditFindsADeploymentThatSharesADaemonSetsLabels runs `daemonset-guard
// audit` on the live cluster, where a Deployment's pods carry the labels a
// DaemonSet selects on.
func TestAuditFindsADeploymentThatSharesADaemonSetsLabels(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-audit")
	g := NewWithT(t)
	labels := map[string]string{"app": "logging"}
	c.create(t, daemonSet(ns, "shipper", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Selector.MatchLabels = labels
		ds.Spec.Template.Labels = map[string]string{"app": "logging", "component": "shipper"}
	}))
	_, err := c.client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "aggregator"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "logging", "component": "aggregator"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "logging", "component": "aggregator"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "aggregator", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	out, _ := daemonsetGuard(t, "audit", "--kubeconfig", os.Getenv("KUBECONFIG"), "-n", ns, "-o", "json")
	var report cliReport
	g.Expect(json.Unmarshal(out, &report)).To(Succeed(), "audit's report: %s", out)
	g.Expect(report.Results).To(ConsistOf(HaveField("Findings", ContainElement(And(
		HaveField("Rule", "selector-overlap"),
		HaveField("Message", HavePrefix("its selector (app=logging) selects the pods of Deployment aggregator:")),
	)))))
}

var movedList = regexp.MustCompile(`(\d+) nodes would lose their daemon pod: ([^;]+); (\d+) would gain one: ([^;]+);`)

// movedNodes reads the node names of targets-nodes' update line, which lists
// them all when there are at most five of each.
func movedNodes(t *testing.T, message string) (lost, gained []string) {
	t.Helper()
	m := movedList.FindStringSubmatch(message)
	if m == nil || strings.Contains(message, " more") {
		t.Fatalf("cannot read the moved nodes from %q", message)
	}
	return strings.Split(m[2], ", "), strings.Split(m[4], ", ")
}

// without returns the names in a that are not in b.
func without(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

// daemonsetGuard builds the command line and runs it as a user would, with
// the test's cluster; it returns stdout and the exit code.
func daemonsetGuard(t *testing.T, args ...string) ([]byte, int) {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "daemonset-guard")
	if out, err := exec.Command("go", "build", "-o", binary, filepath.Join(testenv.RepoRoot(), "cmd", "daemonset-guard")).CombinedOutput(); err != nil {
		t.Fatalf("building daemonset-guard: %v\n%s", err, out)
	}
	cmd := exec.Command(binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running daemonset-guard %s: %v", strings.Join(args, " "), err)
	}
	if code > 1 {
		t.Fatalf("daemonset-guard %s exited %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return out, code
}

// TestAuditWritesReportsIntoTheLiveCluster installs the reports-api
// module's own CRDs into the local cluster's API server and runs `audit
// --write-reports` there: each DaemonSet of the namespace gets its Report,
// scoped to it and owned by it, and deleting the DaemonSet lets the real
// garbage collector delete the Report.
func TestAuditWritesReportsIntoTheLiveCluster(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-reports")
	g := NewWithT(t)
	kubectl(t, "apply", "--server-side", "-f", testenv.ReportsCRDs(t))
	// Not kubectl wait: it fails at once, rather than waits, on a CRD whose
	// status has no conditions yet.
	g.Eventually(func() (string, error) {
		return runKubectl("get", "crd/reports.openreports.io", "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
	}, 30*time.Second, 250*time.Millisecond).Should(Equal("True"), "the API server serves the Reports")
	ds, _ := c.create(t, daemonSet(ns, "nowhere", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
	}))

	daemonsetGuard(t, "audit", "--kubeconfig", os.Getenv("KUBECONFIG"), "-n", ns, "--write-reports", "-o", "json")
	reports := func() []openreports.Report {
		var list struct {
			Items []openreports.Report `json:"items"`
		}
		g.Expect(json.Unmarshal([]byte(kubectl(t, "get", "reports.openreports.io", "-n", ns, "-o", "json")), &list)).To(Succeed())
		return list.Items
	}
	g.Expect(reports()).To(ConsistOf(And(
		HaveField("Scope.Name", "nowhere"),
		HaveField("OwnerReferences", ConsistOf(HaveField("UID", ds.UID))),
		HaveField("Results", ContainElement(And(HaveField("Rule", "targets-nodes"), HaveField("Result", BeEquivalentTo("warn")),
			HaveField("Description", ContainSubstring("would run on no node"))))),
	)))

	g.Expect(c.client.AppsV1().DaemonSets(ns).Delete(t.Context(), ds.Name, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(reports, 60*time.Second, time.Second).Should(BeEmpty(),
		"the garbage collector deletes the Report with its DaemonSet")
}
