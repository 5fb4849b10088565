package rules

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// rolloutBudget finds rolling updates that would take down more than the
// policy's share of the targeted nodes' daemon pods in one step.
func rolloutBudget(in *Input) ([]Finding, error) {
	strategy := in.Object.Spec.UpdateStrategy
	if strategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || in.Nodes == nil || !in.Nodes.Synced() {
		return nil, nil
	}
	cov, err := in.Coverage()
	if err != nil {
		return nil, err
	}
	targeted := cov.Eligible
	if targeted == 0 {
		return nil, nil
	}
	unavailable, err := MaxUnavailable(strategy.RollingUpdate, targeted)
	if err != nil {
		return nil, nil // the API server has already refused such a value
	}
	// A step cannot take down more pods than there are.
	unavailable = min(unavailable, targeted)
	limit := in.Policy.Rules.RolloutBudget.MaxUnavailable
	allowed, _ := intstr.GetScaledValueFromIntOrPercent(limit, targeted, false)
	// Taking down one pod at a time is the slowest rollout there is.
	allowed = max(allowed, 1)
	if unavailable <= allowed {
		return nil, nil
	}
	f := Finding{
		Rule:  policy.RolloutBudget,
		Field: field.NewPath("spec", "updateStrategy", "rollingUpdate", "maxUnavailable"),
		Message: fmt.Sprintf("one rollout step may take down the daemon pods of %d of the %d targeted nodes, more than the policy allows (%s, %d nodes); "+
			"lower maxUnavailable, or set maxSurge instead to start new pods before old ones stop", unavailable, targeted, limit.String(), allowed),
	}
	// Nodes come and go: only a change of the strategy or of placement may be
	// refused for it, so an unchanged DaemonSet always stays updatable. (A
	// strategy the policy injects is never over its budget at deny: the
	// policy would not have loaded.)
	if in.Operation == Update && equality.Semantic.DeepEqual(in.OldObject.Spec.UpdateStrategy, strategy) && in.placementUnchanged() {
		f.Action = policy.Warn
	}
	return []Finding{f}, nil
}

// MaxUnavailable resolves a rolling update's maxUnavailable against the number
// of targeted nodes exactly as the DaemonSet controller does (percentages of
// maxUnavailable and maxSurge round up; with neither, one pod at a time).
func MaxUnavailable(ru *appsv1.RollingUpdateDaemonSet, targeted int) (int, error) {
	if ru == nil {
		return 1, nil
	}
	unavailable, err := scaled(ru.MaxUnavailable, targeted)
	if err != nil {
		return 0, fmt.Errorf("resolving maxUnavailable: %w", err)
	}
	surge, err := scaled(ru.MaxSurge, targeted)
	if err != nil {
		return 0, fmt.Errorf("resolving maxSurge: %w", err)
	}
	if targeted > 0 && unavailable == 0 && surge == 0 {
		return 1, nil
	}
	return unavailable, nil
}

// scaled resolves v against total. A negative value is an error, as the API
// server's validation has it; the controller never sees one.
func scaled(v *intstr.IntOrString, total int) (int, error) {
	if v == nil {
		return 0, nil
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, true)
	if err == nil && n < 0 {
		return 0, fmt.Errorf("%s must not be negative", v.String())
	}
	return n, err
}
