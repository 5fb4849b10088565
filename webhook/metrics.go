package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// Metrics are daemonset-guard's own Prometheus metrics. controller-runtime
// adds request counts and latencies per webhook path beside them.
type Metrics struct {
	decisions  *prometheus.CounterVec
	findings   *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	ruleErrors *prometheus.CounterVec
	// eligible is written by the leader's node-change re-evaluation.
	eligible *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them, with gauges that read the
// inventory's size at scrape time.
// Each rule's error series exists from the start.
func NewMetrics(reg prometheus.Registerer, inv *inventory.Inventory, rules []string) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_decisions_total",
			Help: "Admission answers by webhook (mutate, validate), operation and decision (allowed, patched, denied).",
		}, []string{"webhook", "operation", "decision"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_findings_total",
			Help: "What the rules found or changed, by rule (empty for what is said of the request itself), action (deny, warn, apply) and operation.",
		}, []string{"rule", "action", "operation"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_policy_reloads_total",
			Help: "Policy file reloads by result (ok, failed).",
		}, []string{"result"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_rule_errors_total",
			Help: "Rule evaluations that failed or were too expensive to start, answered as the rule's onError says, by rule.",
		}, []string{"rule"}),
		eligible: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daemonset_guard_daemonset_eligible_nodes",
			Help: "Nodes each DaemonSet would run on, re-evaluated by the leader when nodes change.",
		}, []string{"namespace", "name"}),
	}
	// Every rule's series exists from the start, so that an alert on its
	// rate needs no special case for a rule that has never failed.
	for _, rule := range rules {
		m.ruleErrors.WithLabelValues(rule)
	}
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "daemonset_guard_inventory_nodes",
		Help: "Nodes in the node inventory.",
	}, func() float64 { n, _ := inv.Size(); return float64(n) })
	classes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "daemonset_guard_inventory_node_classes",
		Help: "Node classes (equal taints and equal values of the label keys some template refers to) held by the node inventory's groupings.",
	}, func() float64 { _, c := inv.Size(); return float64(c) })
	for _, c := range []prometheus.Collector{m.decisions, m.findings, m.reloads, m.ruleErrors, m.eligible, nodes, classes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// PolicyReloaded counts a reload attempt.
func (m *Metrics) PolicyReloaded(err error) {
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.reloads.WithLabelValues(result).Inc()
}
