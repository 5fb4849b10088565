package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// TestTheBinaryIsAKubectlPlugin installs the binary as
// kubectl-daemonset_guard on PATH and runs it through the real kubectl, as a
// user would: without a command it explains itself instead of serving;
// audit finds the cluster through $KUBECONFIG; check judges a file against
// the cluster that --context names, in the namespace -n names.
func TestTheBinaryIsAKubectlPlugin(t *testing.T) {
	g := NewWithT(t)
	kubectlBinary := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	g.Expect(kubectlBinary).To(BeAnExistingFile(), "make test builds kubectl into bin/")
	plugins := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(plugins, "kubectl-daemonset_guard"), ".").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	client, kubeconfig := startCluster(t)
	testenv.CreateReadyNodes(t, client, fixture.Node("ssd-1", []string{"disktype", "ssd"}))
	_, err := client.AppsV1().DaemonSets("logging").Create(context.Background(), fixture.DaemonSet("fluentd"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	loaded, err := clientcmd.LoadFromFile(kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())

	kubectl := func(args ...string) (string, string, error) {
		cmd := exec.Command(kubectlBinary, args...)
		cmd.Env = append(os.Environ(), "PATH="+plugins+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	t.Run("without a command it explains itself", func(t *testing.T) {
		g := NewWithT(t)
		out, _, err := kubectl("daemonset-guard")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(ContainSubstring("kubectl daemonset-guard command [flags]"))
	})

	t.Run("audit finds the cluster through KUBECONFIG and prints YAML", func(t *testing.T) {
		g := NewWithT(t)
		out, stderr, err := kubectl("daemonset-guard", "audit", "-n", "logging", "-o", "yaml")
		g.Expect(err).NotTo(HaveOccurred(), stderr)
		var report AuditReport
		g.Expect(yaml.Unmarshal([]byte(out), &report)).To(Succeed())
		g.Expect(report.Results).To(ConsistOf(HaveField("Name", "fluentd")))
	})

	t.Run("check judges a file against the context's cluster, in the namespace -n names", func(t *testing.T) {
		g := NewWithT(t)
		file := filepath.Join(t.TempDir(), "fluentd.yaml")
		ds := fixture.Written("fluentd")
		ds.Namespace = ""
		data, err := yaml.Marshal(ds)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(os.WriteFile(file, data, 0o600)).To(Succeed())
		out, stderr, err := kubectl("daemonset-guard", "check", "-f", file, "--context", loaded.CurrentContext, "-n", "logging")
		g.Expect(err).NotTo(HaveOccurred(), stderr)
		g.Expect(out).To(ContainSubstring(fmt.Sprintf("logging/fluentd (%s:1, as an update of the live object): admitted", file)))
	})
}
