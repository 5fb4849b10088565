package rules

import (
	"cmp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/namespaces"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

func namespace(annotations ...string) *namespaces.Namespaces {
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logging", Annotations: map[string]string{}}}
	for i := 0; i+1 < len(annotations); i += 2 {
		ns.Annotations[annotations[i]] = annotations[i+1]
	}
	return namespaces.New(ns)
}

func TestNamespacePlacement(t *testing.T) {
	nodes := inventory.New(
		fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("ssd-2", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}), fixture.Node("hdd-2", []string{"disktype", "hdd"}), fixture.Node("hdd-3", []string{"disktype", "hdd"}),
	)
	both := []string{policy.PodNodeSelector, policy.PodTolerationRestriction}
	tests := []struct {
		name       string
		plugins    []string
		op         Operation
		old, ds    *appsv1.DaemonSet
		namespaces Namespaces
		want       []string
	}{
		{
			name:       "says how many daemon pods a namespace node selector leaves Pending, and the fix",
			plugins:    both,
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.NodeSelector, "disktype=ssd"),
			want: []string{"namespace logging's node selector (scheduler.alpha.kubernetes.io/node-selector: disktype=ssd) leaves 3 of the 5 nodes the DaemonSet controller targets " +
				"without a running daemon pod: the controller creates their pods all the same, which stay Pending for good while its status counts them as desired; " +
				"the pods run on 2 nodes. Add disktype=ssd to the template's nodeSelector, so that the controller targets only the nodes the namespace allows"},
		},
		{
			name:       "says nothing when the policy does not say the cluster runs the plugins",
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.NodeSelector, "disktype=ssd"),
		},
		{
			name:       "says nothing of a template that already selects what the namespace does",
			plugins:    both,
			ds:         fixture.DaemonSet("fluent-bit", withNodeSelector("disktype", "ssd")),
			namespaces: namespace(namespaces.NodeSelector, "disktype=ssd"),
		},
		{
			name:       "warns of a template nodeSelector that conflicts with the namespace's, for which every pod is refused",
			plugins:    []string{policy.PodNodeSelector},
			ds:         fixture.DaemonSet("fluent-bit", withNodeSelector("disktype", "hdd")),
			namespaces: namespace(namespaces.NodeSelector, "disktype=ssd"),
			want:       []string{"the template's nodeSelector conflicts with namespace logging's node selector (scheduler.alpha.kubernetes.io/node-selector: disktype=ssd), so PodNodeSelector refuses every daemon pod"},
		},
		{
			name:       "warns of a namespace node selector that is no selector",
			plugins:    []string{policy.PodNodeSelector},
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.NodeSelector, "disktype in (ssd)"),
			want:       []string{`namespace logging's scheduler.alpha.kubernetes.io/node-selector annotation "disktype in (ssd)" is no node selector`},
		},
		{
			name:       "warns of a tolerations whitelist without the tolerations the controller adds, naming them",
			plugins:    both,
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.TolerationsWhitelist, `[{"key":"dedicated","operator":"Exists"}]`),
			want: []string{"namespace logging's tolerations whitelist (scheduler.alpha.kubernetes.io/tolerationsWhitelist) does not allow node.kubernetes.io/not-ready:NoExecute, " +
				"node.kubernetes.io/unreachable:NoExecute, node.kubernetes.io/disk-pressure:NoSchedule, node.kubernetes.io/memory-pressure:NoSchedule, " +
				"node.kubernetes.io/pid-pressure:NoSchedule, node.kubernetes.io/unschedulable:NoSchedule, which every daemon pod carries"},
		},
		{
			name:       "counts the namespace's default tolerations among the pods'",
			plugins:    both,
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.TolerationsWhitelist, `[{"key":"node.kubernetes.io","operator":"Exists"},{"operator":"Exists","effect":"NoExecute"},{"operator":"Exists","effect":"NoSchedule"}]`, namespaces.DefaultTolerations, `[{"key":"team","operator":"Equal","value":"logs","effect":"PreferNoSchedule"}]`),
			want:       []string{"does not allow team=logs:PreferNoSchedule, which every daemon pod carries"},
		},
		{
			name:       "says nothing of a whitelist that allows every toleration",
			plugins:    both,
			ds:         fixture.DaemonSet("fluent-bit"),
			namespaces: namespace(namespaces.TolerationsWhitelist, `[{"operator":"Exists"}]`),
		},
		{
			name:    "says, offline, that namespaces were not checked when the policy says the cluster runs the plugins",
			plugins: both,
			ds:      fixture.DaemonSet("fluent-bit"),
			want:    []string{"the cluster's namespaces are not known here"},
		},
		{
			name:       "says nothing of an update that leaves placement alone",
			plugins:    both,
			op:         Update,
			old:        fixture.DaemonSet("fluent-bit"),
			ds:         fixture.DaemonSet("fluent-bit", withImage("fluent-bit:4")),
			namespaces: namespace(namespaces.NodeSelector, "disktype=ssd"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default(Builtin())
			p.Cluster.AdmissionPlugins = tt.plugins
			in := &Input{Operation: cmp.Or(tt.op, Create), Object: tt.ds, OldObject: tt.old, Policy: p, Nodes: nodes, Namespaces: tt.namespaces}
			expectRuleFindings(t, in, NamespacePlacement, tt.want)
		})
	}
}
