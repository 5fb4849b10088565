package offline_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

func TestHealthSaysARollingUpdateWaitsAtItsLimitButNotAnOnDeleteOne(t *testing.T) {
	ev := offline.Evaluator{Rules: rules.Builtin(), Policy: policy.Default(rules.Builtin()),
		Nodes: inventory.New(fixture.Node("a", nil), fixture.Node("b", nil), fixture.Node("c", nil), fixture.Node("d", nil))}
	// Half way through an update, one pod unavailable, maxUnavailable 1.
	status := appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4, NumberReady: 3, UpdatedNumberScheduled: 2, NumberUnavailable: 1}
	const waits = "the rollout waits at its maxUnavailable limit: 2 of 4 pods updated, 1 unavailable"
	for _, tt := range []struct {
		name     string
		strategy appsv1.DaemonSetUpdateStrategy
		want     []string
	}{
		{"a RollingUpdate waits at its limit", fixture.DaemonSet("x").Spec.UpdateStrategy, []string{waits}},
		{"an OnDelete DaemonSet waits for someone to delete pods, not at a limit", appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds := fixture.DaemonSet("fluentd")
			ds.Spec.UpdateStrategy, ds.Status = tt.strategy, status
			h := ev.Health(ds)
			if h.Predicted != 4 || len(h.Problems) != len(tt.want) || (len(tt.want) > 0 && h.Problems[0] != tt.want[0]) {
				t.Errorf("health = %+v, want predicted 4 and problems %q", h, tt.want)
			}
		})
	}
}
