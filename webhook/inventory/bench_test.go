package inventory

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// BenchmarkCoverage measures one placement question against inventories of
// growing size with 20 node pools, in two fleets: pooled (nodes of a pool are
// alike but for their hostname) and unique (every node also carries labels
// no other node has). Both templates cost O(classes) in both fleets: one
// selects a label, the other names a node (matchFields), which is evaluated
// alone while every other node is evaluated by class.
func BenchmarkCoverage(b *testing.B) {
	templates := map[string]*corev1.PodSpec{
		"by-class": {NodeSelector: map[string]string{"disktype": "ssd"}},
		"names-a-node": {Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"node-00000"}}}}},
		}}}},
	}
	for _, n := range []int{100, 1000, 10000} {
		for _, fleet := range []string{"pooled", "unique"} {
			nodes := fixture.Cluster(n, 20)
			if fleet == "unique" {
				nodes = fixture.UniqueLabels(nodes)
			}
			inv := New(nodes...)
			for name, spec := range templates {
				b.Run(fmt.Sprintf("nodes=%d/fleet=%s/%s", n, fleet, name), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if cov, err := inv.Coverage(spec); err != nil || cov.Nodes != n {
							b.Fatalf("coverage %+v, %v", cov, err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkPlacementBudget measures templates with thousands of required
// node affinity terms: at 5,000 nodes, 10,000 terms listing zones (few
// classes, evaluated) and listing hostnames (one class per node, refused
// before the work starts); and a question just under MaxWork (650 hostname
// terms at 1,000 nodes), which is the longest a question may take.
func BenchmarkPlacementBudget(b *testing.B) {
	large, limit := New(fixture.Cluster(5000, 20)...), New(fixture.Cluster(1000, 20)...)
	hostname := func(i int) string { return fmt.Sprintf("node-%05d", i) }
	for name, tc := range map[string]struct {
		inv      *Inventory
		affinity *corev1.Affinity
		refused  bool
	}{
		"nodes=5000/terms=10000/zones":     {large, fixture.RequiredTerms(10000, "topology.kubernetes.io/zone", func(i int) string { return fmt.Sprintf("zone-%d", i) }), false},
		"nodes=5000/terms=10000/hostnames": {large, fixture.RequiredTerms(10000, corev1.LabelHostname, hostname), true},
		"nodes=1000/terms=650/hostnames":   {limit, fixture.RequiredTerms(650, corev1.LabelHostname, hostname), false},
	} {
		inv, spec := tc.inv, &corev1.PodSpec{Affinity: tc.affinity}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := inv.Coverage(spec); errors.Is(err, ErrTooExpensive) != tc.refused {
					b.Fatalf("refused = %v, want %v", err, tc.refused)
				}
			}
		})
	}
}
