// Package manifests_test checks that every overlay and the Helm chart build,
// that each of their objects is accepted by a real API server, by
// server-side dry run, and that they install a webhook that works.
package manifests_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// placeholder matches what a template leaves behind when nobody filled it in.
var placeholder = regexp.MustCompile(`\$\{|\$\(|\{\{|PLACEHOLDER|CHANGEME|REPLACE_ME|\bTODO\b|<[A-Z_]{3,}>`)

func TestOverlaysPassServerSideDryRun(t *testing.T) {
	root := testenv.RepoRoot()
	env := testenv.StartEnvironment(t, &envtest.Environment{
		// The cert-manager overlay's Issuers and Certificates need the CRDs
		// that ship in the cert-manager Go module this project requires.
		CRDDirectoryPaths:     []string{filepath.Join(moduleDir(t, "github.com/cert-manager/cert-manager"), "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
	})
	kubectl, _ := adminKubectl(t, env)
	groups, err := restmapper.GetAPIGroupResources(discovery.NewDiscoveryClientForConfigOrDie(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	// A dry run creates nothing, so the namespaced objects need their
	// namespace to exist for real.
	if out, err := kubectl("", "create", "namespace", "daemonset-guard-system", "--save-config"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	kustomize := func(dir ...string) func(t *testing.T) (string, error) {
		return func(*testing.T) (string, error) {
			return kubectl("", "kustomize", filepath.Join(append([]string{root}, dir...)...))
		}
	}
	chart := func(variant string) func(t *testing.T) (string, error) {
		return func(t *testing.T) (string, error) {
			return renderChart(t, "daemonset-guard-system", "-f", variantValues(variant))
		}
	}
	for name, render := range map[string]func(t *testing.T) (string, error){
		"cert-manager": kustomize("manifests", "overlays", "cert-manager"),
		"self-managed": kustomize("manifests", "overlays", "self-managed"),
		// What make test-e2e-kind deploys, kept correct where kind cannot run.
		"e2e-kind":           kustomize("e2e", "testdata"),
		"chart cert-manager": chart("cert-manager"),
		"chart self-managed": chart("self-managed"),
	} {
		t.Run(name, func(t *testing.T) {
			built, err := render(t)
			if err != nil {
				t.Fatalf("rendering: %v\n%s", err, built)
			}
			if m := placeholder.FindString(built); m != "" {
				t.Errorf("the overlay holds a placeholder: %q", m)
			}
			out, err := kubectl(built, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatalf("server-side dry run refused the overlay: %v\n%s", err, out)
			}
			if strings.Contains(out, "Warning") {
				t.Errorf("the API server warned (restricted Pod Security?):\n%s", out)
			}
			if n := strings.Count(out, "(server dry run)"); n != strings.Count(built, "\nkind: ") {
				t.Errorf("%d objects accepted, want every object of the overlay:\n%s", n, out)
			}
			// kubectl apply puts a namespaced object without a namespace
			// into the current one, where the webhook does not look.
			for _, obj := range objects(t, built) {
				mapping, err := mapper.RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
				if err != nil {
					t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
				if mapping.Scope.Name() == meta.RESTScopeNameNamespace && obj.GetNamespace() == "" {
					t.Errorf("%s %s has no namespace", obj.GetKind(), obj.GetName())
				}
			}
		})
	}
}

// adminKubectl returns a kubectl that administers the environment's API
// server, and the kubeconfig it uses.
func adminKubectl(t *testing.T, env *envtest.Environment) (func(stdin string, args ...string) (string, error), string) {
	t.Helper()
	kubectlBin := filepath.Join(testenv.RepoRoot(), "bin", "kubectl")
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Fatalf("%s is missing: run `make test`, which builds it: %v", kubectlBin, err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}, kubeconfig
}

// objects decodes every document of rendered manifests.
func objects(t *testing.T, rendered string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	reader := yaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		t.Fatalf("locating module %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}
