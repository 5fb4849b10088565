package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestCheckJudgesAFileAsAnUpdateOfTheLiveObject checks that check, given a
// cluster or a snapshot of it, judges a DaemonSet that already exists as the
// update that applying the file would be: selector changes, the nodes an
// update takes away, and creates for what does not exist yet.
func TestCheckJudgesAFileAsAnUpdateOfTheLiveObject(t *testing.T) {
	g := NewWithT(t)
	client, kubeconfig := startCluster(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, content []byte) string {
		path := filepath.Join(dir, name)
		g.Expect(os.WriteFile(path, content, 0o600)).To(Succeed())
		return path
	}
	testenv.CreateReadyNodes(t, client, fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("hdd-1", []string{"disktype", "hdd"}), fixture.Node("hdd-2", []string{"disktype", "hdd"}))
	// Stored as the manifest below writes it, but on every node.
	stored := strings.Replace(fluentd, "      nodeSelector: {disktype: ssd}\n", "", 1)
	live := &appsv1.DaemonSet{}
	g.Expect(yaml.Unmarshal([]byte(stored), live)).To(Succeed())
	_, err := client.AppsV1().DaemonSets("logging").Create(ctx, live, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	list, err := client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	list.APIVersion, list.Kind = "v1", "List"
	for i := range list.Items {
		list.Items[i].APIVersion, list.Items[i].Kind = "apps/v1", "DaemonSet"
	}
	snapshotData, err := yaml.Marshal(list)
	g.Expect(err).NotTo(HaveOccurred())
	snapshot := write("live.yaml", snapshotData)
	nodesFile := write("nodes.yaml", []byte(nodeList(t, client)))

	reselected := strings.Replace(fluentd, "{matchLabels: {app: fluentd}}", "{matchLabels: {app: fluentd, tier: logs}}", 1)
	reselected = strings.Replace(reselected, "{labels: {app: fluentd}}", "{labels: {app: fluentd, tier: logs}}", 1)
	fresh := strings.Replace(fluentd, "name: fluentd, namespace: logging", "name: fluent-bit, namespace: logging", 1)
	for _, source := range []struct {
		name string
		args []string
	}{
		{"the cluster", []string{"--kubeconfig", kubeconfig}},
		{"a snapshot", []string{"--live-objects", snapshot, "--nodes", nodesFile}},
	} {
		t.Run("from "+source.name, func(t *testing.T) {
			g := NewWithT(t)
			code, stdout, stderr := check(reselected, append([]string{"-f", "-"}, source.args...)...)
			g.Expect(code).To(Equal(exitDenied), "stderr: %s", stderr)
			g.Expect(stdout).To(ContainSubstring("logging/fluentd (<stdin>:1, as an update of the live object): denied"))
			g.Expect(stdout).To(ContainSubstring("deny [selector-immutable] spec.selector: the selector of a DaemonSet cannot change after creation"))

			code, stdout, stderr = check(fluentd, append([]string{"-f", "-", "-o", "json"}, source.args...)...)
			g.Expect(code).To(Equal(exitAdmitted), "stderr: %s", stderr)
			var report CheckReport
			g.Expect(json.Unmarshal([]byte(stdout), &report)).To(Succeed())
			g.Expect(report.Results).To(HaveLen(1))
			g.Expect(report.Results[0].Operation).To(Equal(rules.Update))
			g.Expect(report.Results[0].Findings).To(ContainElement(HaveField("Message", "2 nodes would lose their daemon pod: hdd-1, hdd-2; the update changes the pod template, so it rolls every daemon pod")))

			code, stdout, stderr = check(fresh, append([]string{"-f", "-", "-o", "json"}, source.args...)...)
			g.Expect(code).To(Equal(exitAdmitted), "stderr: %s", stderr)
			g.Expect(json.Unmarshal([]byte(stdout), &report)).To(Succeed())
			g.Expect(report.Results[0].Operation).To(Equal(rules.Create), "a DaemonSet that does not exist is judged as a create")
		})
	}

	t.Run("refuses a snapshot holding something else", func(t *testing.T) {
		code, _, stderr := check(fluentd, "-f", "-", "--live-objects", nodesFile)
		NewWithT(t).Expect(code).To(Equal(exitUsage))
		NewWithT(t).Expect(stderr).To(ContainSubstring("Node in --live-objects, where only DaemonSets belong"))
	})
	t.Run("refuses a snapshot beside a cluster", func(t *testing.T) {
		code, _, stderr := check(fluentd, "-f", "-", "--live-objects", snapshot, "--kubeconfig", kubeconfig)
		NewWithT(t).Expect(code).To(Equal(exitUsage))
		NewWithT(t).Expect(stderr).To(ContainSubstring("give --live-objects or a cluster (--kubeconfig, --context), not both"))
	})
}

// nodeList writes the cluster's nodes as `kubectl get nodes -o yaml` does.
func nodeList(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	list, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list.APIVersion, list.Kind = "v1", "List"
	for i := range list.Items {
		list.Items[i].APIVersion, list.Items[i].Kind = "v1", "Node"
	}
	data, err := yaml.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
