package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

func TestMetricsReportTheInventoryAndPolicyReloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	inv := inventory.New(fixture.Cluster(50, 5)...)
	metrics, err := NewMetrics(reg, inv, rules.Builtin().Names())
	if err != nil {
		t.Fatal(err)
	}
	metrics.PolicyReloaded(nil)
	metrics.PolicyReloaded(errors.New("invalid"))
	metrics.PolicyReloaded(errors.New("invalid"))
	inv.OnDelete(fixture.Node("node-00000", nil))
	// A question on disktype groups the nodes by it and by taints: ssd, hdd
	// and the tainted gpu pool's nodes.
	if _, err := inv.Coverage(&corev1.PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}}); err != nil {
		t.Fatal(err)
	}

	const want = `
# HELP daemonset_guard_inventory_node_classes Node classes (equal taints and equal values of the label keys some template refers to) held by the node inventory's groupings.
# TYPE daemonset_guard_inventory_node_classes gauge
daemonset_guard_inventory_node_classes 3
# HELP daemonset_guard_inventory_nodes Nodes in the node inventory.
# TYPE daemonset_guard_inventory_nodes gauge
daemonset_guard_inventory_nodes 49
# HELP daemonset_guard_policy_reloads_total Policy file reloads by result (ok, failed).
# TYPE daemonset_guard_policy_reloads_total counter
daemonset_guard_policy_reloads_total{result="failed"} 2
daemonset_guard_policy_reloads_total{result="ok"} 1
# HELP daemonset_guard_rule_errors_total Rule evaluations that failed or were too expensive to start, answered as the rule's onError says, by rule.
# TYPE daemonset_guard_rule_errors_total counter
daemonset_guard_rule_errors_total{rule="default-tolerations"} 0
daemonset_guard_rule_errors_total{rule="namespace-placement"} 0
daemonset_guard_rule_errors_total{rule="node-platform"} 0
daemonset_guard_rule_errors_total{rule="priority-class"} 0
daemonset_guard_rule_errors_total{rule="restart-policy-always"} 0
daemonset_guard_rule_errors_total{rule="rolling-update-defaults"} 0
daemonset_guard_rule_errors_total{rule="rollout-budget"} 0
daemonset_guard_rule_errors_total{rule="rollout-stall"} 0
daemonset_guard_rule_errors_total{rule="selector-immutable"} 0
daemonset_guard_rule_errors_total{rule="selector-matches-template"} 0
daemonset_guard_rule_errors_total{rule="selector-overlap"} 0
daemonset_guard_rule_errors_total{rule="selector-stable-labels"} 0
daemonset_guard_rule_errors_total{rule="targets-nodes"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "daemonset_guard_inventory_nodes", "daemonset_guard_inventory_node_classes",
		"daemonset_guard_policy_reloads_total", "daemonset_guard_rule_errors_total"); err != nil {
		t.Error(err)
	}
	if _, err := NewMetrics(reg, inv, rules.Builtin().Names()); err == nil {
		t.Error("registering the metrics twice should fail, not shadow them")
	}
}
