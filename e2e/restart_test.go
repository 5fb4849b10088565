//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

// TestInventoryFollowsNodesAcrossAnAPIServerRestart stops the whole control
// plane of the local cluster (API server and etcd included) while the webhook
// runs on the host, starts it again, relabels a node, and measures how long
// the webhook's answers take to reflect the relabel. Meanwhile /readyz stays
// ready: the webhook keeps its last known nodes, and it receives no request
// while the API server is gone. What tells an operator that the inventory is
// not following the cluster is the webhook's failed API requests in
// rest_client_requests_total{code="<error>"}: client-go retries a refused
// watch by itself and never reports it to a watch error handler. It needs
// kwokctl's cluster, so e2e/kind/run.sh leaves it out by name.
func TestInventoryFollowsNodesAcrossAnAPIServerRestart(t *testing.T) {
	kwokctl, name := os.Getenv("E2E_KWOKCTL"), os.Getenv("E2E_CLUSTER_NAME")
	readyz, metrics := os.Getenv("E2E_WEBHOOK_READYZ"), os.Getenv("E2E_WEBHOOK_METRICS")
	if kwokctl == "" || name == "" || readyz == "" || metrics == "" {
		t.Fatal("restarting the API server needs the local cluster: set E2E_KWOKCTL, E2E_CLUSTER_NAME, E2E_WEBHOOK_READYZ and E2E_WEBHOOK_METRICS (make test-e2e-local does)")
	}
	c := connect(t)
	ns := c.namespace(t, "e2e-restart")
	g := NewWithT(t)
	ds := daemonSet(ns, "restart-agent", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"e2e-restart": "relabelled"}
	})
	g.Expect(c.predict(t, ds)).To(BeZero(), "no node carries the label yet")

	cluster := func(verb string) {
		t.Helper()
		out, err := exec.Command(kwokctl, verb, "cluster", "--name", name).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "kwokctl %s cluster: %s", verb, out)
	}
	ready := func() error {
		resp, err := http.Get(readyz)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz answered %s", resp.Status)
		}
		return nil
	}
	failedRequests := func() (float64, error) {
		resp, err := http.Get(metrics)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		families, err := bench.ParseMetrics(resp.Body, "rest_client_requests_total")
		if err != nil {
			return 0, err
		}
		var failed float64
		for _, m := range families["rest_client_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == "<error>" {
					failed += m.GetCounter().GetValue()
				}
			}
		}
		return failed, nil
	}
	failedBefore, err := failedRequests()
	g.Expect(err).NotTo(HaveOccurred())
	cluster("stop")
	stopped := true
	t.Cleanup(func() {
		if stopped {
			cluster("start")
		}
	})
	_, err = c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	g.Expect(err).To(HaveOccurred(), "the API server is down")
	g.Consistently(ready, 3*time.Second, 250*time.Millisecond).Should(Succeed(), "/readyz while the API server is down")
	g.Eventually(failedRequests, 30*time.Second, 250*time.Millisecond).Should(BeNumerically(">", failedBefore),
		"the node watch's failed reconnects show in the webhook's rest_client_requests_total")
	failedDuring, _ := failedRequests()
	t.Logf("the webhook counted %.0f failed API requests while the API server was down", failedDuring-failedBefore)
	cluster("start")
	stopped = false
	g.Eventually(func() error {
		_, err := c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		return err
	}, 60*time.Second, 250*time.Millisecond).Should(Succeed(), "the API server is back")

	relabelled := time.Now()
	c.updateNode(t, "ssd-1", func(n *corev1.Node) { n.Labels["e2e-restart"] = "relabelled" })
	g.Eventually(func() int { return c.predict(t, ds) }, 60*time.Second, 250*time.Millisecond).Should(Equal(1),
		"the webhook's inventory reconnected and saw the relabel")
	t.Logf("the webhook reflected a relabel made after the restart in %v", time.Since(relabelled).Round(10*time.Millisecond))
	g.Expect(ready()).To(Succeed())
}
