package manifests_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

var update = flag.Bool("update", false, "rewrite the chart's values.schema.json from the policy's schema")

// chartDir is the Helm chart; its variants are the values files of ci/, as
// chart-testing reads them, each the twin of a kustomize overlay.
var chartDir = filepath.Join(testenv.RepoRoot(), "manifests", "charts", "daemonset-guard")

var chartVariants = []string{"cert-manager", "self-managed"}

// helm runs bin/helm with its configuration and caches kept in the test's
// temporary directory, and returns its combined output.
func helm(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(testenv.RepoRoot(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make test`, which builds it: %v", bin, err)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// renderChart renders the chart as `helm template` does for a release
// daemonset-guard in namespace, with the cluster serving cert-manager's API.
func renderChart(t *testing.T, namespace string, args ...string) (string, error) {
	t.Helper()
	return renderChartFrom(t, chartDir, namespace, args...)
}

// renderChartFrom is renderChart for the chart at chart: a directory or a
// package.
func renderChartFrom(t *testing.T, chart, namespace string, args ...string) (string, error) {
	t.Helper()
	return helm(t, "", append([]string{"template", "daemonset-guard", chart, "--namespace", namespace,
		"--api-versions", "cert-manager.io/v1"}, args...)...)
}

func variantValues(variant string) string {
	return filepath.Join(chartDir, "ci", variant+"-values.yaml")
}

// TestTheChartSchemaHoldsThePolicyToTheRules keeps values.schema.json's
// policy the policy's schema of the built-in rules, so that a rule added
// or an option renamed cannot leave the chart refusing, or letting through,
// what the webhook would not. `go test ./manifests -run Schema -update`
// rewrites it.
func TestTheChartSchemaHoldsThePolicyToTheRules(t *testing.T) {
	path := filepath.Join(chartDir, "values.schema.json")
	current, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(current, &schema); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	schema["properties"].(map[string]any)["policy"] = policy.Schema(rules.Builtin())
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(schema); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(want.String(), string(current)); diff != "" {
		t.Errorf("%s is not the policy's schema of the built-in rules (-want +got); rewrite it with go test ./manifests -run Schema -update:\n%s", path, diff)
	}
}

// TestTheChartLints runs helm lint --strict on each variant. helm lint
// renders without the cluster's API list, so the cert-manager variant is
// linted with its cert-manager check off, as the value documents.
func TestTheChartLints(t *testing.T) {
	for _, variant := range chartVariants {
		t.Run(variant, func(t *testing.T) {
			out, err := helm(t, "", "lint", "--strict", chartDir, "-f", variantValues(variant), "--set", "certificates.certManager.verifyAPI=false")
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint did not pass the chart:\n%s", out)
			}
		})
	}
}

// helmLabels are the labels the chart adds to the kustomize base's.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// TestTheChartRendersWhatTheOverlaysApply holds each variant of the chart,
// at its defaults, to its kustomize overlay: the same objects, each equal
// field for field (RBAC, webhook configurations, policies, Deployment),
// but for Helm's own labels, the Namespace (Helm's --create-namespace
// creates it) and the policy's comments. Whatever changes in one must
// change in the other.
func TestTheChartRendersWhatTheOverlaysApply(t *testing.T) {
	for _, variant := range chartVariants {
		t.Run(variant, func(t *testing.T) {
			// kustomize needs no cluster.
			built, err := exec.Command(filepath.Join(testenv.RepoRoot(), "bin", "kubectl"), "kustomize",
				filepath.Join(testenv.RepoRoot(), "manifests", "overlays", variant)).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v\n%s", err, built)
			}
			rendered, err := renderChart(t, systemNamespace, "-f", variantValues(variant))
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, rendered)
			}
			overlay, chart := comparable(t, objects(t, string(built))), comparable(t, objects(t, rendered))
			namespace := "Namespace//" + systemNamespace
			if _, ok := overlay[namespace]; !ok {
				t.Fatalf("the overlay has no Namespace %s", systemNamespace)
			}
			delete(overlay, namespace)
			// kustomize's namespace transformer does not know that these
			// kinds are cluster-scoped and gives them the namespace, which
			// kubectl and the API server then ignore.
			for key, obj := range overlay {
				if strings.HasPrefix(key, "ValidatingAdmissionPolicy") {
					delete(overlay, key)
					obj.SetNamespace("")
					overlay[obj.GetKind()+"//"+obj.GetName()] = obj
				}
			}
			for key, obj := range chart {
				labels := obj.GetLabels()
				for _, l := range helmLabels {
					if _, ok := labels[l]; !ok {
						t.Errorf("%s has no label %s", key, l)
					}
					delete(labels, l)
				}
				obj.SetLabels(labels)
			}
			if diff := cmp.Diff(overlay, chart); diff != "" {
				t.Errorf("the chart renders other objects than the %s overlay (-overlay +chart):\n%s", variant, diff)
			}
		})
	}
}

// comparable keys objects by kind, namespace and name, with the policy of
// the ConfigMap decoded, so that its comments and layout do not count.
func comparable(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		key := obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
		if _, dup := out[key]; dup {
			t.Fatalf("%s appears twice", key)
		}
		if obj.GetKind() == "ConfigMap" && obj.GetName() == "daemonset-guard-policy" {
			var p map[string]any
			text, _, _ := unstructured.NestedString(obj.Object, "data", "policy.yaml")
			if err := sigsyaml.Unmarshal([]byte(text), &p); err != nil {
				t.Fatalf("%s: policy.yaml: %v", key, err)
			}
			obj.Object["data"] = map[string]any{"policy.yaml": p}
		}
		normalizeExpressions(obj.Object)
		out[key] = obj
	}
	return out
}

// normalizeExpressions collapses the whitespace of every CEL expression in
// v, which CEL ignores: kustomize re-emits a folded YAML scalar whose lines
// are indented further with a blank line that adds a line break, and Helm
// passes the text through as written.
func normalizeExpressions(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, field := range v {
			if s, ok := field.(string); ok && k == "expression" {
				v[k] = strings.Join(strings.Fields(s), " ")
				continue
			}
			normalizeExpressions(field)
		}
	case []any:
		for _, item := range v {
			normalizeExpressions(item)
		}
	}
}

// TestTheChartRendersAnyPolicyTheWebhookLoads renders the chart with each
// policy of the repository as its value and loads the rendered ConfigMap
// with the webhook's own loader: the schema refuses none of them, and what
// the webhook reads is the policy given.
func TestTheChartRendersAnyPolicyTheWebhookLoads(t *testing.T) {
	root := testenv.RepoRoot()
	files := []string{
		filepath.Join(root, "manifests", "base", "policy.yaml"),
		filepath.Join(root, "webhook", "policy", "testdata", "example.yaml"),
		filepath.Join(root, "e2e", "testdata", "policy.yaml"),
		filepath.Join(root, "e2e", "testdata", "demo-policy.yaml"),
	}
	catalog := rules.Builtin()
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			want, err := policy.Load(file, catalog)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var value map[string]any
			if err := sigsyaml.Unmarshal(data, &value); err != nil {
				t.Fatal(err)
			}
			// Helm merges a value into the chart's default policy: the rules
			// the default configures and the file does not are set to null,
			// which removes them, so that the rendered policy is the file's.
			rulesOf, _ := value["rules"].(map[string]any)
			if rulesOf == nil {
				rulesOf = map[string]any{}
				value["rules"] = rulesOf
			}
			for name := range defaultPolicyRules(t) {
				if _, ok := rulesOf[name]; !ok {
					rulesOf[name] = nil
				}
			}
			valuesData, err := sigsyaml.Marshal(map[string]any{"policy": value})
			if err != nil {
				t.Fatal(err)
			}
			values := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(values, valuesData, 0o600); err != nil {
				t.Fatal(err)
			}
			rendered, err := renderChart(t, systemNamespace, "-f", values, "--show-only", "templates/configmap.yaml")
			if err != nil {
				t.Fatalf("helm template refused a policy the webhook loads: %v\n%s", err, rendered)
			}
			_, policyFile := deploymentAndPolicy(t, rendered+"\n---\n"+deploymentStub)
			got, err := policy.Load(policyFile, catalog)
			if err != nil {
				t.Fatalf("the webhook's loader refuses the rendered policy: %v", err)
			}
			if diff := cmp.Diff(mustJSON(t, want), mustJSON(t, got)); diff != "" {
				t.Errorf("the rendered policy is not the policy given (-given +rendered):\n%s", diff)
			}
		})
	}
}

// deploymentStub lets deploymentAndPolicy read a rendering of the ConfigMap
// alone.
const deploymentStub = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stub}\n"

// defaultPolicyRules returns the rules the chart's default policy
// configures.
func defaultPolicyRules(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Policy struct {
			Rules map[string]any `json:"rules"`
		} `json:"policy"`
	}
	if err := sigsyaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	return values.Policy.Rules
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestTheChartRefusesWhatCannotWork renders values that could not work and
// expects helm to refuse each before anything reaches a cluster, saying
// where and what to do.
func TestTheChartRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"refuses the cert-manager variant where the cluster has no cert-manager API",
			[]string{"template", "daemonset-guard", chartDir},
			[]string{"this cluster does not serve the cert-manager.io/v1 API", "install cert-manager v1.19.0 or later first", "--set certificates.mode=self-managed"}},
		{"refuses a certificate mode it does not know, naming the value",
			[]string{"template", "daemonset-guard", chartDir, "--set", "certificates.mode=vault"},
			[]string{"certificates", "mode", "'cert-manager', 'self-managed'"}},
		{"refuses a replica count that is not a number, naming the value",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set-string", "replicaCount=two"},
			[]string{"replicaCount", "want integer"}},
		{"refuses one replica behind a disruption budget that would block every drain",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "replicaCount=1"},
			[]string{"replicaCount 1 with podDisruptionBudget.minAvailable 1 would block every drain", "podDisruptionBudget.enabled=false"}},
		{"refuses a policy rule that does not exist, naming it",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "policy.rules.targets-node.action=warn"},
			[]string{"policy", "rules", "targets-node"}},
		{"refuses an action a rule does not take",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "policy.rules.targets-nodes.action=block"},
			[]string{"policy", "targets-nodes", "action", "'deny', 'warn', 'off'"}},
		{"refuses a misspelt option of a rule",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "policy.rules.rollout-budget.maxUnavaliable=1"},
			[]string{"policy", "rollout-budget", "maxUnavaliable"}},
		{"refuses an option of the wrong type",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "policy.rules.node-platform.singleArch=yes"},
			[]string{"policy", "node-platform", "singleArch", "want boolean"}},
		{"refuses a value the chart does not have, naming it",
			[]string{"template", "daemonset-guard", chartDir, "-f", variantValues("self-managed"), "--set", "replicas=3"},
			[]string{"replicas"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, "", tc.args...)
			if err == nil {
				t.Fatalf("helm rendered it:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the refusal does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "kind: Deployment") {
				t.Errorf("the refusal rendered objects:\n%s", out)
			}
		})
	}
}

// TestTheChartPackages packages the chart as `helm push` uploads it to an
// OCI registry (these machines have none to push to): the package renders
// each variant exactly as the chart's directory does.
func TestTheChartPackages(t *testing.T) {
	dir := t.TempDir()
	out, err := helm(t, "", "package", chartDir, "--destination", dir)
	if err != nil {
		t.Fatalf("helm package: %v\n%s", err, out)
	}
	pkgs, _ := filepath.Glob(filepath.Join(dir, "daemonset-guard-*.tgz"))
	if len(pkgs) != 1 {
		t.Fatalf("helm package wrote %v", pkgs)
	}
	out, err = helm(t, "", "show", "chart", pkgs[0])
	if err != nil || !strings.Contains(out, "appVersion: v0.1.0") {
		t.Errorf("helm show chart of the package: %v\n%s", err, out)
	}
	for _, variant := range chartVariants {
		fromDir, err := renderChart(t, systemNamespace, "-f", variantValues(variant))
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, fromDir)
		}
		fromPackage, err := renderChartFrom(t, pkgs[0], systemNamespace, "-f", variantValues(variant))
		if err != nil {
			t.Fatalf("the packaged chart does not render: %v\n%s", err, fromPackage)
		}
		if diff := cmp.Diff(fromDir, fromPackage); diff != "" {
			t.Errorf("the package renders the %s variant otherwise than the chart's directory (-directory +package):\n%s", variant, diff)
		}
	}
}

// TestTheChartSetsTheWebhooksPlacementAndSizeFromItsValues renders the
// values the defaults leave out of the comparison with the overlays and
// finds each where the Deployment and the PodDisruptionBudget take it.
func TestTheChartSetsTheWebhooksPlacementAndSizeFromItsValues(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	rendered, err := renderChart(t, "guard", "-f", variantValues("self-managed"),
		"--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=2",
		"--set", "resources.requests.memory=128Mi", "--set", "priorityClassName=platform-critical",
		"--set", "nodeSelector.node-role\\.kubernetes\\.io/infra=", "--set", "image.digest="+digest, "--set", "image.pullPolicy=Always",
		"--set-json", `tolerations=[{"key":"infra","operator":"Exists","effect":"NoSchedule"}]`,
		"--set-json", `imagePullSecrets=[{"name":"registry"}]`)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	deployment, _ := deploymentAndPolicy(t, rendered)
	g := NewWithT(t)
	g.Expect(*deployment.Spec.Replicas).To(BeEquivalentTo(3))
	pod := deployment.Spec.Template.Spec
	g.Expect(pod.PriorityClassName).To(Equal("platform-critical"))
	g.Expect(pod.NodeSelector).To(Equal(map[string]string{"node-role.kubernetes.io/infra": ""}))
	g.Expect(pod.Tolerations).To(ConsistOf(HaveField("Key", "infra")))
	g.Expect(pod.ImagePullSecrets).To(ConsistOf(HaveField("Name", "registry")))
	container := pod.Containers[0]
	g.Expect(container.Image).To(Equal("ghcr.io/daemonset-guard/daemonset-guard@"+digest), "a digest wins over the tag")
	g.Expect(string(container.ImagePullPolicy)).To(Equal("Always"))
	g.Expect(container.Resources.Requests.Memory().String()).To(Equal("128Mi"))
	g.Expect(container.Resources.Limits.Memory().String()).To(Equal("256Mi"), "the default limit stays")
	g.Expect(container.Args).To(ContainElements("--webhook-service=guard/daemonset-guard", "--cert-secret=guard/daemonset-guard-tls"))
	var pdb map[string]any
	for _, obj := range objects(t, rendered) {
		if obj.GetKind() == "PodDisruptionBudget" {
			pdb = obj.Object
		}
	}
	g.Expect(pdb).To(HaveKeyWithValue("spec", HaveKeyWithValue("minAvailable", BeEquivalentTo(2))))
}
