package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

func TestMetricsReportTheInventoryAndPolicyReloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	inv := inventory.New(fixture.Cluster(50, 5)...)
	metrics, err := NewMetrics(reg, inv)
	if err != nil {
		t.Fatal(err)
	}
	metrics.PolicyReloaded(nil)
	metrics.PolicyReloaded(errors.New("invalid"))
	metrics.PolicyReloaded(errors.New("invalid"))
	inv.OnDelete(fixture.Node("node-00000", nil))

	const want = `
# HELP daemonset_guard_inventory_node_classes Classes of nodes with equal labels and taints in the node inventory.
# TYPE daemonset_guard_inventory_node_classes gauge
daemonset_guard_inventory_node_classes 5
# HELP daemonset_guard_inventory_nodes Nodes in the node inventory.
# TYPE daemonset_guard_inventory_nodes gauge
daemonset_guard_inventory_nodes 49
# HELP daemonset_guard_policy_reloads_total Policy file reloads by result (ok, failed).
# TYPE daemonset_guard_policy_reloads_total counter
daemonset_guard_policy_reloads_total{result="failed"} 2
daemonset_guard_policy_reloads_total{result="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"daemonset_guard_inventory_nodes", "daemonset_guard_inventory_node_classes", "daemonset_guard_policy_reloads_total"); err != nil {
		t.Error(err)
	}
	if _, err := NewMetrics(reg, inv); err == nil {
		t.Error("registering the metrics twice should fail, not shadow them")
	}
}
