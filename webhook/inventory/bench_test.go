package inventory

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// BenchmarkCoverage measures one placement question against inventories of
// growing size with 20 node classes: the class path costs O(classes), the
// node-by-node path (a template that names nodes) O(nodes).
func BenchmarkCoverage(b *testing.B) {
	templates := map[string]*corev1.PodSpec{
		"by-class": {NodeSelector: map[string]string{"disktype": "ssd"}},
		"node-by-node": {Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"node-00000"}}}}},
		}}}},
	}
	for _, n := range []int{100, 1000, 10000} {
		inv := New(fixture.Cluster(n, 20)...)
		for name, spec := range templates {
			b.Run(fmt.Sprintf("nodes=%d/%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if inv.Coverage(spec).Nodes != n {
						b.Fatal("wrong node count")
					}
				}
			})
		}
	}
}
