package rules

import (
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	daemonutil "k8s.io/kubernetes/pkg/controller/daemon/util"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// RolloutBudget is the name of the rule that finds rollout steps that take
// down too many nodes' daemon pods at once.
const RolloutBudget = "rollout-budget"

// RolloutBudgetOptions configures rollout-budget.
type RolloutBudgetOptions struct {
	// MaxUnavailable is the largest share of the targeted nodes that one
	// rollout step may take down; int or percentage.
	MaxUnavailable intstr.IntOrString `json:"maxUnavailable"`
}

// Validate implements policy.Options: a positive count or a percentage in
// (0%, 100%].
func (o *RolloutBudgetOptions) Validate(path *field.Path) field.ErrorList {
	path, v := path.Child("maxUnavailable"), o.MaxUnavailable
	if v.Type == intstr.Int {
		if v.IntVal < 1 {
			return field.ErrorList{field.Invalid(path, v.IntVal, "must be at least 1")}
		}
		return nil
	}
	pct, err := intstr.GetScaledValueFromIntOrPercent(&v, 100, true)
	if err != nil || !strings.HasSuffix(v.StrVal, "%") {
		return field.ErrorList{field.Invalid(path, v.StrVal, `must be an integer or a percentage such as "10%"`)}
	}
	if pct < 1 || pct > 100 {
		return field.ErrorList{field.Invalid(path, v.StrVal, "must be between 1% and 100%")}
	}
	return nil
}

// RolloutBudget declares the rule.
func (builtin) RolloutBudget() Rule {
	return Rule{
		Spec: policy.Spec{Name: RolloutBudget, Kind: policy.Validating, Default: policy.Warn,
			Options:  func() policy.Options { return &RolloutBudgetOptions{MaxUnavailable: intstr.FromString("50%")} },
			Coherent: budgetCoherent},
		Summary: "one rollout step takes down at most the policy's share of the targeted nodes",
		Description: "Resolves maxUnavailable and maxSurge against the number of nodes the DaemonSet targets, as the controller does, " +
			"and finds a rolling update whose single step would take down the daemon pods of more nodes than maxUnavailable allows (default 50%): " +
			"a node agent that goes away on half the cluster at once is an outage. An UPDATE that changes neither the strategy nor placement is only warned about. " +
			"A policy whose rollout-budget, at deny, would refuse the maxUnavailable its rolling-update-defaults injects does not load.",
		Check: rolloutBudget,
	}
}

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
	unavailable, err := MaxUnavailable(in.Object, targeted)
	if err != nil {
		return nil, nil // the API server has already refused such a value
	}
	// A step cannot take down more pods than there are.
	unavailable = min(unavailable, targeted)
	limit := &policy.OptionsOf[*RolloutBudgetOptions](in.Policy, RolloutBudget).MaxUnavailable
	allowed, _ := intstr.GetScaledValueFromIntOrPercent(limit, targeted, false)
	// Taking down one pod at a time is the slowest rollout there is.
	allowed = max(allowed, 1)
	if unavailable <= allowed {
		return nil, nil
	}
	f := Finding{
		Rule:  RolloutBudget,
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

// budgetCoherent refuses a policy whose rollout-budget, at deny, would deny
// what its rolling-update-defaults injects: the guard must never refuse the
// defaults it adds.
func budgetCoherent(p *policy.Policy) field.ErrorList {
	injected := policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults).MaxUnavailable
	budget := policy.OptionsOf[*RolloutBudgetOptions](p, RolloutBudget).MaxUnavailable
	if injected == nil || p.Action(RollingUpdateDefaults) != policy.Apply || p.Action(RolloutBudget) != policy.Deny {
		return nil
	}
	n, ok := firstBudgetConflict(*injected, budget)
	if !ok {
		return nil
	}
	down, _ := intstr.GetScaledValueFromIntOrPercent(injected, n, true)
	allowed, _ := intstr.GetScaledValueFromIntOrPercent(&budget, n, false)
	return field.ErrorList{field.Invalid(field.NewPath("rules", RollingUpdateDefaults, "maxUnavailable"), injected.String(), fmt.Sprintf(
		"rollout-budget, at deny, would refuse the maxUnavailable this policy injects: on a DaemonSet that targets %d nodes it takes down %d at a time, "+
			"and rules.rollout-budget.maxUnavailable (%s) allows %d; lower the one, raise the other, or set rollout-budget to warn",
		n, min(down, n), budget.String(), max(allowed, 1)))}
}

// firstBudgetConflict returns the smallest number of targeted nodes at which
// a rolling step of maxUnavailable (rounded up, as the DaemonSet controller
// does, and at most every node) exceeds the budget (rounded down, at least
// one node), as rollout-budget judges it. Percentages repeat every 100
// nodes, so 1 to 200 holds every case but those a large count decides,
// whose first node counts are computed.
func firstBudgetConflict(maxUnavailable, budget intstr.IntOrString) (int, bool) {
	exceeds := func(n int) bool {
		down, _ := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, n, true)
		allowed, _ := intstr.GetScaledValueFromIntOrPercent(&budget, n, false)
		return min(down, n) > max(allowed, 1)
	}
	for n := 1; n <= 200; n++ {
		if exceeds(n) {
			return n, true
		}
	}
	var candidates []int
	if maxUnavailable.Type == intstr.Int {
		candidates = append(candidates, int(maxUnavailable.IntVal))
	} else if budget.Type == intstr.Int {
		pct, _ := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, 100, true)
		limit := max(int(budget.IntVal), 1)
		candidates = append(candidates, max(limit+1, 100*limit/pct+1))
	}
	for _, n := range candidates {
		if n > 0 && exceeds(n) {
			return n, true
		}
	}
	return 0, false
}

// MaxUnavailable resolves how many daemon pods one step of the DaemonSet's
// rollout may take down on targeted nodes, with the controller's own
// functions (UnavailableCount and SurgeCount of pkg/controller/daemon/util:
// percentages round up). With neither unavailability nor surge the
// controller takes one pod at a time; that rule sits in its unexported
// updatedDesiredNodeCounts, so it is restated here, and FuzzMaxUnavailable
// holds the whole to apimachinery's arithmetic. A negative value is an
// error, as the API server's validation has it; the controller never sees
// one.
func MaxUnavailable(ds *appsv1.DaemonSet, targeted int) (int, error) {
	unavailable, _, err := rollingStep(ds, targeted)
	return unavailable, err
}

// RolloutSteps returns how many steps a rolling update of the DaemonSet
// takes over targeted nodes: one per maxUnavailable pods, or per maxSurge
// pods when it surges.
func RolloutSteps(ds *appsv1.DaemonSet, targeted int) (int, error) {
	unavailable, surge, err := rollingStep(ds, targeted)
	if err != nil {
		return 0, err
	}
	step := max(unavailable, surge, 1)
	return (targeted + step - 1) / step, nil
}

// rollingStep returns what MaxUnavailable resolves and the resolved maxSurge.
func rollingStep(ds *appsv1.DaemonSet, targeted int) (unavailable, surge int, err error) {
	resolve := func(field string, count func(*appsv1.DaemonSet, int) (int, error)) (int, error) {
		n, err := count(ds, targeted)
		if err == nil && n < 0 {
			err = errors.New("must not be negative")
		}
		if err != nil {
			return 0, fmt.Errorf("resolving %s: %w", field, err)
		}
		return n, nil
	}
	if unavailable, err = resolve("maxUnavailable", daemonutil.UnavailableCount); err != nil {
		return 0, 0, err
	}
	if surge, err = resolve("maxSurge", daemonutil.SurgeCount); err != nil {
		return 0, 0, err
	}
	if targeted > 0 && unavailable == 0 && surge == 0 {
		unavailable = 1
	}
	return unavailable, surge, nil
}
