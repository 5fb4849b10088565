package rules

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

func TestSelectorOverlap(t *testing.T) {
	workload := func(kind, name string, selector map[string]string, template map[string]string) Workload {
		return Workload{Kind: kind, Name: name, Selector: &metav1.LabelSelector{MatchLabels: selector}, TemplateLabels: template}
	}
	byApp := func(ds *appsv1.DaemonSet) {
		ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "logging"}}
		ds.Spec.Template.Labels = map[string]string{"app": "logging", "component": "shipper"}
	}
	tests := []struct {
		name      string
		ds        *appsv1.DaemonSet
		workloads Workloads
		want      []string
	}{
		{
			name: "warns of a selector that selects a Deployment's pods, naming it and the fix",
			ds:   fixture.DaemonSet("fluent-bit", byApp),
			workloads: WorkloadsByNamespace{"logging": {
				workload("Deployment", "log-aggregator", map[string]string{"app": "logging", "component": "aggregator"}, map[string]string{"app": "logging", "component": "aggregator"}),
			}},
			want: []string{"its selector (app=logging) selects the pods of Deployment log-aggregator: deleting either with --cascade=orphan hands its pods to the other, " +
				"which deletes those it did not make; give the DaemonSet's template a label that only it has, and select on it"},
		},
		{
			name: "warns of another workload whose selector selects the DaemonSet's pods",
			ds:   fixture.DaemonSet("fluent-bit"),
			workloads: WorkloadsByNamespace{"logging": {
				workload("StatefulSet", "everything", map[string]string{"app.kubernetes.io/name": "fluent-bit"}, map[string]string{"app.kubernetes.io/name": "fluent-bit", "role": "store"}),
			}},
			want: []string{"its selector (app.kubernetes.io/name=fluent-bit) selects the pods of StatefulSet everything, and the selector of StatefulSet everything (app.kubernetes.io/name=fluent-bit) selects its pods"},
		},
		{
			name: "says nothing of workloads with their own labels, of other namespaces, or of the DaemonSet itself",
			ds:   fixture.DaemonSet("fluent-bit"),
			workloads: WorkloadsByNamespace{
				"logging": {
					workload("DaemonSet", "fluent-bit", map[string]string{"app.kubernetes.io/name": "fluent-bit"}, map[string]string{"app.kubernetes.io/name": "fluent-bit"}),
					workload("Deployment", "loki", map[string]string{"app.kubernetes.io/name": "loki"}, map[string]string{"app.kubernetes.io/name": "loki"}),
				},
				"monitoring": {workload("DaemonSet", "fluent-bit", map[string]string{"app.kubernetes.io/name": "fluent-bit"}, map[string]string{"app.kubernetes.io/name": "fluent-bit"})},
			},
		},
		{
			name: "says nothing at admission, where no workloads are known",
			ds:   fixture.DaemonSet("fluent-bit", byApp),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Input{Operation: Create, Object: tt.ds, Policy: policy.Default(Builtin()), Workloads: tt.workloads}
			expectRuleFindings(t, in, SelectorOverlap, tt.want)
		})
	}
}
