package rules

import (
	"cmp"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// tenNodes are ten workers, the first notReady of them not ready as the
// node lifecycle controller marks them.
func tenNodes(notReady int) *inventory.Inventory {
	var nodes []*corev1.Node
	for i := range 10 {
		var taints []corev1.Taint
		if i < notReady {
			taints = []corev1.Taint{fixture.Taint(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoSchedule), fixture.Taint(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoExecute)}
		}
		nodes = append(nodes, fixture.Node(fmt.Sprintf("worker-%d", i), nil, taints...))
	}
	return inventory.New(nodes...)
}

func TestRolloutStall(t *testing.T) {
	// stored is the DaemonSet as its status reads with desired pods and
	// misscheduled ones (those left on nodes that are not ready count so).
	stored := func(desired, misscheduled int32) *appsv1.DaemonSet {
		ds := fixture.DaemonSet("fluentd")
		ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, NumberMisscheduled: misscheduled, ObservedGeneration: ds.Generation}
		return ds
	}
	rolling := func(maxUnavailable, maxSurge intstr.IntOrString) func(*appsv1.DaemonSet) {
		return func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}
		}
	}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	tests := []struct {
		name     string
		op       Operation
		old, ds  *appsv1.DaemonSet
		nodes    *inventory.Inventory
		minReady int32
		want     []string // substrings of rollout-stall's findings, in order
	}{
		{
			name:  "foresees the stall when not-ready nodes already use up maxUnavailable, as measured on the real controller",
			old:   stored(7, 3),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(intstr.FromInt32(2), zero)),
			nodes: tenNodes(3),
			want: []string{"the rollout will stall: 3 of 10 targeted nodes are not ready or unreachable, and their daemon pods can be neither replaced nor removed, " +
				"which uses up maxUnavailable (2); raise maxUnavailable to at least 4 or fix those nodes first"},
		},
		{
			name:  "lets a rollout through whose maxUnavailable leaves room after the not-ready nodes",
			old:   stored(7, 3),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(intstr.FromInt32(5), zero)),
			nodes: tenNodes(3),
		},
		{
			name: "says nothing of pods the status calls unavailable: the controller replaces those outside the budget",
			old: func() *appsv1.DaemonSet {
				ds := stored(10, 0)
				ds.Status.NumberUnavailable = 3
				return ds
			}(),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(one, zero)),
			nodes: tenNodes(0),
		},
		{
			name:  "says nothing of not-ready nodes that hold no daemon pod, which the rollout never waits for",
			old:   stored(7, 0),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(one, zero)),
			nodes: tenNodes(3),
		},
		{
			name:  "resolves a percentage against the desired pods, rounding up as the controller does",
			old:   stored(7, 3),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(intstr.FromString("30%"), zero)),
			nodes: tenNodes(3),
			want:  []string{"which uses up maxUnavailable (3); raise maxUnavailable to at least 4"},
		},
		{
			name:  "says nothing of a surging rollout, which starts new pods beside the old ones",
			old:   stored(7, 3),
			ds:    fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(zero, one)),
			nodes: tenNodes(3),
		},
		{
			name:  "says nothing of an update that leaves the pod template alone: nothing rolls",
			old:   stored(7, 3),
			ds:    fixture.DaemonSet("fluentd", rolling(one, zero), func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} }),
			nodes: tenNodes(3),
		},
		{
			name:  "says nothing on create: nothing rolls",
			op:    Create,
			ds:    fixture.DaemonSet("fluentd", rolling(one, zero)),
			nodes: tenNodes(3),
		},
		{
			name: "says nothing of an OnDelete DaemonSet, whose pods change only when deleted",
			old:  stored(7, 3),
			ds: fixture.DaemonSet("fluentd", withImage("fluentd:v2"), func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
			}),
			nodes: tenNodes(3),
		},
		{
			name:     "warns when minReadySeconds times the steps exceeds maxRolloutDuration",
			old:      stored(10, 0),
			ds:       fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(intstr.FromInt32(2), zero)),
			nodes:    tenNodes(0),
			minReady: 900,
			want: []string{"the rollout will take at least 1h15m0s: 5 steps of 2 pods, each waiting minReadySeconds (900s), more than the policy's maxRolloutDuration (1h0m0s); " +
				"raise maxUnavailable (or maxSurge) or lower minReadySeconds"},
		},
		{
			name:     "says nothing of a rollout that takes exactly maxRolloutDuration",
			old:      stored(10, 0),
			ds:       fixture.DaemonSet("fluentd", withImage("fluentd:v2"), rolling(intstr.FromInt32(2), zero)),
			nodes:    tenNodes(0),
			minReady: 720,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := cmp.Or(tt.op, Update)
			tt.ds.Spec.MinReadySeconds = tt.minReady
			in := &Input{Operation: op, Object: tt.ds, Policy: policy.Default(Builtin()), Nodes: tt.nodes}
			if op == Update {
				in.OldObject = tt.old
			}
			expectRuleFindings(t, in, RolloutStall, tt.want)
		})
	}
}

func TestRolloutStallRefusesANonPositiveDuration(t *testing.T) {
	_, err := policy.Parse([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {rollout-stall: {maxRolloutDuration: 0s}}\n"), Builtin())
	if err == nil || !strings.Contains(err.Error(), "rules.rollout-stall.maxRolloutDuration: Invalid value") {
		t.Errorf("error = %v", err)
	}
	p, err := policy.Parse([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {rollout-stall: {maxRolloutDuration: 30m}}\n"), Builtin())
	if err != nil || policy.OptionsOf[*RolloutStallOptions](p, RolloutStall).MaxRolloutDuration != (metav1.Duration{Duration: 30 * time.Minute}) {
		t.Errorf("maxRolloutDuration: %v", err)
	}
}
