//go:build e2e

// Package e2e drives a real cluster with daemonset-guard registered: the
// local kwok cluster of `make test-e2e-local`, or kind with the manifests
// deployed (`make test-e2e-kind`). It checks what the real controllers do,
// not only what the API answers.
//
// Environment:
//
//	KUBECONFIG            the cluster (required)
//	KUBECTL               kubectl binary (default: kubectl on PATH)
//	E2E_POLICY_FILE       the webhook's policy file, when it runs on the host
//	E2E_POLICY_CONFIGMAP  namespace/name of the policy ConfigMap, in a cluster
//	E2E_WEBHOOK_LOG       the webhook's log file, printed on failure
//	E2E_WEBHOOK_READYZ    the webhook's /readyz URL, when it runs on the host
//	E2E_WEBHOOK_METRICS   the webhook's /metrics URL, when it runs on the host
//	E2E_KWOKCTL, E2E_CLUSTER_NAME
//	                      kwokctl and the local cluster's name, to restart its
//	                      control plane (with KWOK_WORKDIR)
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/daemonset-guard/daemonset-guard/internal/warnings"
)

// cluster is the connection to the cluster under test.
type cluster struct {
	client   kubernetes.Interface
	warnings *warnings.Recorder
}

func connect(t *testing.T) *cluster {
	t.Helper()
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		t.Fatal("KUBECONFIG is not set: run `make test-e2e-local`, or point it at a cluster with daemonset-guard deployed")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings.Recorder{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = w
	// client-go's default of 5 requests a second would make the parity
	// test's 200 creates take 40 s.
	cfg.QPS, cfg.Burst = 100, 200
	return &cluster{client: kubernetes.NewForConfigOrDie(cfg), warnings: w}
}

// namespace creates a namespace for one test and reports, if the test fails,
// what a person would look at: the webhook's log, the namespace's events and
// its DaemonSets' status.
func (c *cluster) namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	// A generated name lets the suite run again while an earlier run's
	// namespaces are still terminating.
	created, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name = created.Name
	t.Cleanup(func() {
		if t.Failed() {
			c.report(t, name)
		}
		if err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

func (c *cluster) report(t *testing.T, namespace string) {
	ctx := context.Background()
	if path := os.Getenv("E2E_WEBHOOK_LOG"); path != "" {
		if data, err := os.ReadFile(path); err == nil {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			t.Logf("webhook log (last 40 lines of %s):\n%s", path, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	} else if pods, err := c.client.CoreV1().Pods("daemonset-guard-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=daemonset-guard"}); err == nil {
		tail := int64(40)
		for _, p := range pods.Items {
			data, _ := c.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
			t.Logf("webhook log of %s:\n%s", p.Name, data)
		}
	}
	if events, err := c.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		var b strings.Builder
		for _, e := range events.Items {
			fmt.Fprintf(&b, "  %s %s/%s %s: %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
		t.Logf("events in %s:\n%s", namespace, b.String())
	}
	if list, err := c.client.AppsV1().DaemonSets(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, ds := range list.Items {
			t.Logf("DaemonSet %s status: %+v", ds.Name, ds.Status)
		}
	}
}

// daemonSet returns a DaemonSet as a user writes it: no defaults filled in.
func daemonSet(namespace, name, image string, change ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	labels := map[string]string{"app.kubernetes.io/name": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// At the class node agents ship with, so that only the tests
				// of priority-class hear from it.
				Spec: corev1.PodSpec{PriorityClassName: "system-node-critical", Containers: []corev1.Container{{Name: name, Image: image}}},
			},
		},
	}
	for _, f := range change {
		f(ds)
	}
	return ds
}

var coverage = regexp.MustCompile(`would run on (?:no node: )?(\d+) of (\d+) nodes`)

// predicted reads the webhook's prediction from its targets-nodes warning
// (the e2e policy reports coverage for every DaemonSet).
func predicted(t *testing.T, warnings []string) int {
	t.Helper()
	for _, w := range warnings {
		if m := coverage.FindStringSubmatch(w); m != nil && strings.HasPrefix(w, "[targets-nodes]") {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no targets-nodes coverage among the warnings %q", warnings)
	return 0
}

// create creates the DaemonSet and returns it with the webhook's prediction.
func (c *cluster) create(t *testing.T, ds *appsv1.DaemonSet) (*appsv1.DaemonSet, int) {
	t.Helper()
	created, warnings := c.createWarned(t, ds)
	return created, predicted(t, warnings)
}

// createWarned creates the DaemonSet and returns it with the warnings the
// create got.
func (c *cluster) createWarned(t *testing.T, ds *appsv1.DaemonSet) (*appsv1.DaemonSet, []string) {
	t.Helper()
	c.warnings.Take()
	created, err := c.client.AppsV1().DaemonSets(ds.Namespace).Create(context.Background(), ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating DaemonSet %s: %v", ds.Name, err)
	}
	return created, c.warnings.Take()
}

// predict asks the webhook, by a dry-run create, how many nodes the
// DaemonSet would run on now.
func (c *cluster) predict(t *testing.T, ds *appsv1.DaemonSet) int {
	t.Helper()
	probe := ds.DeepCopy()
	probe.Name += "-probe"
	probe.ResourceVersion, probe.UID = "", ""
	c.warnings.Take()
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).Create(context.Background(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run create of %s: %v", probe.Name, err)
	}
	return predicted(t, c.warnings.Take())
}

// settled waits until the controller has placed and readied want pods.
func (c *cluster) settled(t *testing.T, ds *appsv1.DaemonSet, want int) *appsv1.DaemonSet {
	t.Helper()
	var current *appsv1.DaemonSet
	NewWithT(t).Eventually(func(g Gomega) {
		var err error
		current, err = c.client.AppsV1().DaemonSets(ds.Namespace).Get(context.Background(), ds.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		s := current.Status
		g.Expect(s.ObservedGeneration).To(Equal(current.Generation), "the controller has seen the latest spec")
		g.Expect(s.DesiredNumberScheduled).To(BeEquivalentTo(want), "desiredNumberScheduled")
		g.Expect(s.CurrentNumberScheduled).To(BeEquivalentTo(want), "currentNumberScheduled")
		g.Expect(s.NumberReady).To(BeEquivalentTo(want), "numberReady")
		g.Expect(s.NumberMisscheduled).To(BeZero(), "numberMisscheduled")
	}, 90*time.Second, 250*time.Millisecond).Should(Succeed(), "DaemonSet %s should run %d ready pods", ds.Name, want)
	return current
}

// nodesOf returns the sorted names of the nodes running pods of the DaemonSet.
func (c *cluster) nodesOf(t *testing.T, ds *appsv1.DaemonSet) []string {
	t.Helper()
	pods := c.pods(t, ds)
	var nodes []string
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	slices.Sort(nodes)
	return nodes
}

func (c *cluster) pods(t *testing.T, ds *appsv1.DaemonSet) []corev1.Pod {
	t.Helper()
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	list, err := c.client.CoreV1().Pods(ds.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// nodes returns the sorted names of the nodes that satisfy keep.
func (c *cluster) nodes(t *testing.T, keep func(corev1.Node) bool) []string {
	t.Helper()
	list, err := c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list.Items {
		if keep(n) {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return names
}

// updateNode changes a node and undoes the change when the test ends.
func (c *cluster) updateNode(t *testing.T, name string, change func(*corev1.Node)) {
	t.Helper()
	nodes := c.client.CoreV1().Nodes()
	var original *corev1.Node
	if err := update(nodes.Get, nodes.Update, name, func(n *corev1.Node) {
		original = n.DeepCopy()
		change(n)
	}); err != nil {
		t.Fatalf("changing node %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := update(nodes.Get, nodes.Update, name, func(n *corev1.Node) {
			n.Labels, n.Spec.Taints = original.Labels, original.Spec.Taints
		}); err != nil {
			t.Errorf("restoring node %s: %v", name, err)
		}
	})
}

// updateDaemonSet changes the current version of a DaemonSet and returns what
// the API server stored.
func (c *cluster) updateDaemonSet(t *testing.T, ds *appsv1.DaemonSet, change func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	t.Helper()
	daemonSets := c.client.AppsV1().DaemonSets(ds.Namespace)
	var stored *appsv1.DaemonSet
	err := update(daemonSets.Get, func(ctx context.Context, ds *appsv1.DaemonSet, opts metav1.UpdateOptions) (*appsv1.DaemonSet, error) {
		var err error
		stored, err = daemonSets.Update(ctx, ds, opts)
		return stored, err
	}, ds.Name, change)
	if err != nil {
		t.Fatalf("updating DaemonSet %s/%s: %v", ds.Namespace, ds.Name, err)
	}
	return stored
}

// update reads an object, changes it and writes it back, again on a conflict:
// the controllers and kwok write status while a test runs, so an object read
// earlier is often stale by the time the test changes it.
func update[T any](get func(context.Context, string, metav1.GetOptions) (T, error), put func(context.Context, T, metav1.UpdateOptions) (T, error), name string, change func(T)) error {
	ctx := context.Background()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(current)
		_, err = put(ctx, current, metav1.UpdateOptions{})
		return err
	})
}

// runKubectl runs kubectl as a user would, for what only kubectl does
// (rollout status, cascading deletes).
func runKubectl(args ...string) (string, error) {
	bin := os.Getenv("KUBECTL")
	if bin == "" {
		bin = "kubectl"
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKubectl(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// unavailable counts the target nodes without an available daemon pod: one
// not being deleted, Ready for at least minReadySeconds, as the DaemonSet
// controller counts availability.
func unavailable(pods []corev1.Pod, targets []string, minReady time.Duration, now time.Time) int {
	available := map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && !cond.LastTransitionTime.Add(minReady).After(now) {
				available[p.Spec.NodeName] = true
			}
		}
	}
	n := 0
	for _, node := range targets {
		if !available[node] {
			n++
		}
	}
	return n
}
