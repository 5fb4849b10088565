// Package testenv starts the real kube-apiserver and etcd that `make test`
// builds into bin/, through controller-runtime's envtest, with daemonset-guard's
// webhook configurations installed.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Start starts a control plane for the test and stops it when the test ends.
// The webhook configurations of manifests/base are installed, pointing at
// https://<host>:<port> of the returned options, with envtest's CA as caBundle.
func Start(t *testing.T, webhookHost string) (*rest.Config, envtest.WebhookInstallOptions) {
	t.Helper()
	env := StartEnvironment(t, &envtest.Environment{
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:                        []string{filepath.Join(RepoRoot(), "manifests", "webhooks.yaml")},
			LocalServingHostExternalName: webhookHost,
		},
	})
	return env.Config, env.WebhookInstallOptions
}

// StartEnvironment starts env and stops it when the test ends.
func StartEnvironment(t *testing.T, env *envtest.Environment) *envtest.Environment {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, which builds kube-apiserver and etcd into bin/ and sets it")
	}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	return env
}

// RepoRoot is the repository's root, found from this file's place in it.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ReportsCRDs returns the directory of the openreports.io CRDs that the
// github.com/openreports/reports-api module, at the version go.mod names,
// ships, for envtest to install.
func ReportsCRDs(t testing.TB) string {
	t.Helper()
	return filepath.Join(moduleDir(t, "github.com/openreports/reports-api"), "config", "crd")
}

// PolicyReportCRDs returns the directory of the wgpolicyk8s.io CRDs that
// the github.com/kyverno/kyverno module, whose types of them the reports
// use, ships at the version go.mod names.
func PolicyReportCRDs(t testing.TB) string {
	t.Helper()
	return filepath.Join(moduleDir(t, "github.com/kyverno/kyverno"), "config", "crds", "policyreport")
}

func moduleDir(t testing.TB, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		t.Fatalf("finding the module %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}
