package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

const (
	corpus       = "../../webhook/offline/testdata/corpus.yaml"
	corpusNodes  = "../../webhook/offline/testdata/nodes.yaml"
	readmePolicy = "../../webhook/policy/testdata/example.yaml"
)

const fluentd = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: fluentd, namespace: logging}
spec:
  selector: {matchLabels: {app: fluentd}}
  template:
    metadata: {labels: {app: fluentd}}
    spec:
      nodeSelector: {disktype: ssd}
      containers: [{name: fluentd, image: fluentd:v1}]
`

func check(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runCheck(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   string
		noStdout bool
	}{
		{name: "admits a DaemonSet that runs on nodes, shows the mutation and the coverage", stdin: fluentd,
			args: []string{"-f", "-", "--nodes", corpusNodes, "--policy-file", readmePolicy}, code: exitAdmitted,
			stdout: []string{"logging/fluentd (<stdin>:1): admitted", "mutated by default-tolerations, rolling-update-defaults:",
				`~ /spec/updateStrategy/rollingUpdate/maxUnavailable: "10%"`, "nodes: would run on 3 of 8 nodes: 3 lack label disktype=ssd, 2 have untolerated taint nvidia.com/gpu=present:NoSchedule"}},
		{name: "exits 1 when the corpus holds a DaemonSet the webhook would deny", args: []string{"-f", corpus, "--nodes", corpusNodes, "--policy-file", readmePolicy},
			code: exitDenied, stdout: []string{"corpus/nvme-agent (" + corpus + ":516): denied", "deny [targets-nodes] spec.template.spec: the DaemonSet would run on no node: 0 of 8 nodes: 8 lack label disktype=nvme"}},
		{name: "keeps the explicit maxUnavailable of 1 that calico-node's manifest writes, as kubectl apply does", args: []string{"-f", corpus, "--nodes", corpusNodes, "--policy-file", readmePolicy, "-o", "json"},
			code: exitDenied, stdout: []string{`"name": "calico-node",
      "verdict": "admitted",
      "operation": "CREATE",
      "mutations": [
        "rolling-update-defaults"
      ],
      "patch": [
        {
          "op": "add",
          "path": "/metadata/annotations",
          "value": {
            "daemonset-guard.io/mutated": "rolling-update-defaults"
          }
        },
        {
          "op": "add",
          "path": "/spec/minReadySeconds",
          "value": 10
        }
      ],`}},
		{name: "reports a DaemonSet that could not be evaluated on its own line, judges the others and exits 3",
			stdin: fluentd + "---\n" + strings.Replace(fluentd, "name: fluentd,", "name: pinned,", 1) + "      affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [" + hostnameTerms(1000) + "]}}}\n",
			args:  []string{"-f", "-", "--nodes", write("many-nodes.yaml", manyNodes(1000))}, code: exitUnevaluated,
			stdout: []string{"logging/fluentd (<stdin>:1): admitted\n", "logging/pinned (<stdin>:12): admitted\n",
				"warn [targets-nodes] spec: the rule could not be evaluated, so it was not applied (its onError is allow): placement is too expensive to check",
				"error [targets-nodes] placement is too expensive to check"}},
		{name: "reads every file of a directory", args: []string{"-f", filepath.Dir(corpus), "--nodes", corpusNodes}, code: exitAdmitted,
			stdout: []string{"corpus/fluent-bit", "skipped ../../webhook/offline/testdata/nodes.yaml:1 (item 0): Node is not a DaemonSet"}},
		{name: "says node rules were not evaluated without nodes", stdin: fluentd, args: []string{"-f", "-"}, code: exitAdmitted,
			stdout: []string{"warn [targets-nodes] spec.template.spec: no node information was given, so node placement was not checked"}},
		{name: "skips other kinds with a note", stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n" + fluentd, args: []string{"-f", "-"}, code: exitAdmitted,
			stdout: []string{"skipped <stdin>:1: Deployment is not a DaemonSet", "logging/fluentd (<stdin>:5): admitted"}},
		{name: "names the file and line of bad YAML", args: []string{"-f", write("bad.yaml", fluentd+"---\nkind: DaemonSet\nmetadata:\n  name: x\n   bad: indent\n")},
			code: exitUsage, stderr: "bad.yaml:15: yaml: mapping values are not allowed in this context", noStdout: true},
		{name: "names an unknown field with its path", stdin: strings.Replace(fluentd, "nodeSelector", "nodeSelectr", 1), args: []string{"-f", "-"},
			code: exitUsage, stderr: `<stdin>:1: unknown field "spec.template.spec.nodeSelectr"`, noStdout: true},
		{name: "refuses an older API version", stdin: strings.Replace(fluentd, "apps/v1", "apps/v1beta2", 1), args: []string{"-f", "-"},
			code: exitUsage, stderr: `DaemonSet fluentd has apiVersion "apps/v1beta2"; daemonset-guard checks apps/v1`, noStdout: true},
		{name: "refuses to run without input", args: nil, code: exitUsage, stderr: "no input", noStdout: true},
		{name: "refuses a missing file", args: []string{"-f", filepath.Join(dir, "missing.yaml")}, code: exitUsage, stderr: "missing.yaml: no such file or directory", noStdout: true},
		{name: "refuses an unknown output format", stdin: fluentd, args: []string{"-f", "-", "-o", "xml"}, code: exitUsage, stderr: `-o must be text, json or yaml, not "xml"`, noStdout: true},
		{name: "refuses nodes from a file and a cluster at once", stdin: fluentd, args: []string{"-f", "-", "--nodes", corpusNodes, "--kubeconfig", "x"}, code: exitUsage, stderr: "not both", noStdout: true},
		{name: "refuses a nodes file holding something else", stdin: fluentd, args: []string{"-f", "-", "--nodes", corpus}, code: exitUsage, stderr: "DaemonSet in --nodes, where only Nodes belong", noStdout: true},
		{name: "refuses a broken policy file with the field path", stdin: fluentd, args: []string{"-f", "-", "--policy-file", write("policy.yaml", "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {targets-nodes: {action: block}}\n")},
			code: exitUsage, stderr: `rules.targets-nodes.action: Unsupported value: "block"`, noStdout: true},
		{name: "says the cluster cannot be reached, and that the answer is incomplete", stdin: fluentd, args: []string{"-f", "-", "--kubeconfig", write("kubeconfig", unreachableKubeconfig)},
			code: exitUnevaluated, stderr: "listing nodes:", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			code, stdout, stderr := check(tt.stdin, tt.args...)
			g.Expect(code).To(Equal(tt.code), "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			for _, s := range tt.stdout {
				g.Expect(stdout).To(ContainSubstring(s))
			}
			g.Expect(stderr).To(ContainSubstring(tt.stderr))
			if tt.noStdout {
				g.Expect(stdout).To(BeEmpty(), "nothing is reported when the input is bad")
			}
		})
	}
}

// hostnameTerms writes n required node affinity terms that list nodes by hostname.
func hostnameTerms(n int) string {
	terms := make([]string, n)
	for i := range terms {
		terms[i] = fmt.Sprintf("{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [node-%d]}]}", i)
	}
	return strings.Join(terms, ", ")
}

// manyNodes writes a `kubectl get nodes -o yaml` of n plain nodes.
func manyNodes(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {apiVersion: v1, kind: Node, metadata: {name: node-%d, labels: {kubernetes.io/hostname: node-%d}}}\n", i, i)
	}
	return b.String()
}

// unreachableKubeconfig names an API server on a port nothing listens on.
const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`

func TestCheckJSONReportIsStable(t *testing.T) {
	g := NewWithT(t)
	code, stdout, _ := check(fluentd, "-f", "-", "--nodes", corpusNodes, "--policy-file", readmePolicy, "-o", "json")
	g.Expect(code).To(Equal(exitAdmitted))
	var report map[string]any
	g.Expect(json.Unmarshal([]byte(stdout), &report)).To(Succeed())
	g.Expect(report).To(HaveKeyWithValue("kind", "CheckReport"))
	g.Expect(report).To(HaveKeyWithValue("nodesEvaluated", true))
	result := report["results"].([]any)[0].(map[string]any)
	g.Expect(result).To(HaveKeyWithValue("verdict", "admitted"))
	g.Expect(result).To(HaveKeyWithValue("source", "<stdin>:1"))
	g.Expect(result["coverage"]).To(HaveKeyWithValue("eligible", BeEquivalentTo(3)))
	g.Expect(result["patch"]).To(ContainElement(map[string]any{"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/maxUnavailable", "value": "10%"}))

	_, again, _ := check(fluentd, "-f", "-", "--nodes", corpusNodes, "--policy-file", readmePolicy, "-o", "json")
	g.Expect(again).To(Equal(stdout), "the same input gives the same bytes")
	_, asYAML, _ := check(fluentd, "-f", "-", "--nodes", corpusNodes, "--policy-file", readmePolicy, "-o", "yaml")
	var fromYAML map[string]any
	g.Expect(yaml.Unmarshal([]byte(asYAML), &fromYAML)).To(Succeed())
	g.Expect(fromYAML).To(Equal(report), "YAML carries the same report")
}

func TestCheckWritesThePatchedDaemonSetsWithoutDefaults(t *testing.T) {
	g := NewWithT(t)
	out := filepath.Join(t.TempDir(), "patched.yaml")
	code, _, stderr := check(fluentd, "-f", "-", "--policy-file", readmePolicy, "--patched", out)
	g.Expect(code).To(Equal(exitAdmitted), stderr)
	data, err := os.ReadFile(out)
	g.Expect(err).NotTo(HaveOccurred())
	var ds appsv1.DaemonSet
	g.Expect(yaml.UnmarshalStrict(data, &ds)).To(Succeed())
	g.Expect(ds.Spec.Template.Spec.Tolerations).To(ContainElement(HaveField("Key", "node-role.kubernetes.io/control-plane")))
	g.Expect(ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String()).To(Equal("10%"))
	g.Expect(ds.Spec.MinReadySeconds).To(BeEquivalentTo(10))
	g.Expect(string(data)).NotTo(ContainSubstring("terminationMessagePath"), "no API server defaults")
	g.Expect(string(data)).NotTo(ContainSubstring("revisionHistoryLimit"), "no API server defaults")

	// A check of the patched file changes nothing more: the defaults are committed.
	code, stdout, _ := check(string(data), "-f", "-", "--policy-file", readmePolicy)
	g.Expect(code).To(Equal(exitAdmitted))
	g.Expect(stdout).NotTo(ContainSubstring("mutated by"))
}
