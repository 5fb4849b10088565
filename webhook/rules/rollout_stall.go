package rules

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// RolloutStall is the name of the rule that foresees rollouts that cannot
// finish.
const RolloutStall = "rollout-stall"

// RolloutStallOptions configures rollout-stall.
type RolloutStallOptions struct {
	// MaxRolloutDuration is the longest a rollout may take by its
	// minReadySeconds alone, one wait per step, before the rule warns.
	MaxRolloutDuration metav1.Duration `json:"maxRolloutDuration"`
}

// Validate implements policy.Options.
func (o *RolloutStallOptions) Validate(path *field.Path) field.ErrorList {
	if o.MaxRolloutDuration.Duration <= 0 {
		return field.ErrorList{field.Invalid(path.Child("maxRolloutDuration"), o.MaxRolloutDuration.String(), "must be a positive duration such as 1h")}
	}
	return nil
}

// RolloutStall declares the rule.
func (builtin) RolloutStall() Rule {
	return Rule{
		Spec: policy.Spec{Name: RolloutStall, Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options {
				return &RolloutStallOptions{MaxRolloutDuration: metav1.Duration{Duration: time.Hour}}
			}},
		Summary: "on an UPDATE that rolls pods, the rollout can start and finish in time",
		Description: "Before a rollout starts, counts what the DaemonSet controller's rolling update will find unavailable and unreplaceable: " +
			"the targeted nodes that are not ready or unreachable and still hold a daemon pod, whose pods can be neither replaced nor removed. " +
			"When they already reach maxUnavailable, the controller replaces nothing, for good; the rule says so with the numbers and the fix. " +
			"It also warns when minReadySeconds times the number of rollout steps exceeds maxRolloutDuration (default 1h).",
		Check: rolloutStall,
	}
}

// rolloutStall foresees, on an update that changes the pod template, a
// rolling update that cannot start and one that takes too long.
func rolloutStall(in *Input) ([]Finding, error) {
	ds := in.Object
	if in.Operation != Update || ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || !in.rollsPods() {
		return nil, nil
	}
	desired := int(in.OldObject.Status.DesiredNumberScheduled)
	if desired == 0 {
		return nil, nil
	}
	maxUnavailable, surge, err := rollingStep(ds, desired)
	if err != nil {
		return nil, nil // the API server has already refused such a value
	}
	path := field.NewPath("spec", "updateStrategy", "rollingUpdate", "maxUnavailable")
	var out []Finding
	// With surge, new pods start beside the old ones and nodes that cannot
	// run one wait outside the budget: only the one-at-a-time path stalls.
	if surge == 0 && in.Nodes != nil && in.Nodes.Synced() {
		notReady, err := in.Nodes.NotReady(&in.OldObject.Spec.Template.Spec)
		if err != nil {
			return nil, err
		}
		// The controller replaces an old pod that is unavailable outside the
		// budget, so the status's unavailable pods never block the start.
		// What does: a node whose pods are all terminating, as those of a
		// node without a kubelet stay. Such a node is no longer desired, but
		// its pod still counts as misscheduled, which bounds the count from
		// nodes that never got a pod.
		stuck := min(notReady, int(in.OldObject.Status.NumberMisscheduled))
		if stuck > 0 && stuck >= maxUnavailable {
			out = append(out, Finding{Rule: RolloutStall, Field: path, Message: fmt.Sprintf(
				"the rollout will stall: %d of %d targeted nodes are not ready or unreachable, and their daemon pods can be neither replaced nor removed, "+
					"which uses up maxUnavailable (%d); raise maxUnavailable to at least %d or fix those nodes first",
				stuck, desired+notReady, maxUnavailable, stuck+1)})
		}
	}
	step := max(maxUnavailable, surge, 1)
	steps := (desired + step - 1) / step
	limit := policy.OptionsOf[*RolloutStallOptions](in.Policy, RolloutStall).MaxRolloutDuration.Duration
	if wait := time.Duration(ds.Spec.MinReadySeconds) * time.Second * time.Duration(steps); wait > limit {
		out = append(out, Finding{Rule: RolloutStall, Action: policy.Warn, Field: field.NewPath("spec", "minReadySeconds"), Message: fmt.Sprintf(
			"the rollout will take at least %s: %d steps of %d pods, each waiting minReadySeconds (%ds), more than the policy's maxRolloutDuration (%s); "+
				"raise maxUnavailable (or maxSurge) or lower minReadySeconds", wait, steps, step, ds.Spec.MinReadySeconds, limit)})
	}
	return out, nil
}
