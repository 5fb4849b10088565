package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// Metrics are daemonset-guard's own Prometheus metrics. controller-runtime
// adds request counts and latencies per webhook path beside them.
type Metrics struct {
	decisions *prometheus.CounterVec
	reloads   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them, with gauges that read the
// inventory's size at scrape time.
func NewMetrics(reg prometheus.Registerer, inv *inventory.Inventory) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_decisions_total",
			Help: "Rule outcomes by rule, action (deny, warn, apply) and operation.",
		}, []string{"rule", "action", "operation"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daemonset_guard_policy_reloads_total",
			Help: "Policy file reloads by result (ok, failed).",
		}, []string{"result"}),
	}
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "daemonset_guard_inventory_nodes",
		Help: "Nodes in the node inventory.",
	}, func() float64 { n, _ := inv.Size(); return float64(n) })
	classes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "daemonset_guard_inventory_node_classes",
		Help: "Classes of nodes with equal labels and taints in the node inventory.",
	}, func() float64 { _, c := inv.Size(); return float64(c) })
	for _, c := range []prometheus.Collector{m.decisions, m.reloads, nodes, classes} {
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
