package rules

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/apps"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// RollingUpdateDefaults is the name of the rule that sets the policy's
// rollout defaults where the user chose none.
const RollingUpdateDefaults = "rolling-update-defaults"

// RollingUpdateDefaultsOptions configures rolling-update-defaults.
type RollingUpdateDefaultsOptions struct {
	// MaxUnavailable replaces the API server's default of 1; int or percentage.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// MinReadySeconds replaces the API server's default of 0.
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`
}

// Validate implements policy.Options as the API server validates a
// DaemonSet's rolling update, with the maxSurge of 0 that a DaemonSet
// injected into has by default.
func (o *RollingUpdateDefaultsOptions) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if v := o.MaxUnavailable; v != nil {
		errs = append(errs, appsvalidation.ValidateRollingUpdateDaemonSet(&apps.RollingUpdateDaemonSet{MaxUnavailable: *v, MaxSurge: intstr.FromInt32(0)}, path)...)
	}
	if v := o.MinReadySeconds; v != nil {
		errs = append(errs, corevalidation.ValidateNonnegativeField(int64(*v), path.Child("minReadySeconds"))...)
	}
	return errs
}

// RollingUpdateDefaults declares the rule.
func (builtin) RollingUpdateDefaults() Rule {
	return Rule{
		Spec: policy.Spec{Name: RollingUpdateDefaults, Kind: policy.Mutating, Default: policy.Apply,
			Options: func() policy.Options { return &RollingUpdateDefaultsOptions{} }},
		Summary: "sets the policy's `maxUnavailable` and `minReadySeconds` where the user chose none",
		Description: "Sets spec.updateStrategy.rollingUpdate.maxUnavailable and spec.minReadySeconds to the policy's values where the user chose none; " +
			"neither is in the pod template, so no rollout starts. A value counts as the user's choice when it differs from the API server's default, " +
			"when an UPDATE changes it, when the last applied configuration or a server-side apply manager sets it, or, in check, when the file writes it. " +
			"An explicit OnDelete strategy is left alone. The built-in policy sets neither value.",
		Apply: rollingUpdateDefaults,
		Fields: func(from, to *appsv1.DaemonSet) {
			to.Spec.UpdateStrategy = from.Spec.UpdateStrategy
			to.Spec.MinReadySeconds = from.Spec.MinReadySeconds
		},
		Owned: [][]string{maxUnavailablePath, minReadySecondsPath},
	}
}

// lastAppliedAnnotation is where client-side kubectl apply keeps the
// configuration the user last applied.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// The API server's static defaults for a DaemonSet's rollout, already applied
// to every object admission sees.
var (
	apiDefaultMaxUnavailable  = intstr.FromInt32(1)
	apiDefaultMinReadySeconds = int32(0)
)

// rollingUpdateDefaults applies the policy's maxUnavailable and
// minReadySeconds where the user chose none. It leaves an explicit OnDelete
// strategy alone. Neither field is part of the pod template, so changing them
// never starts a rollout.
//
// The API server defaults maxUnavailable to 1 and minReadySeconds to 0 before
// admission, so a value equal to the default may have been typed or not. It
// counts as the user's choice when
//   - it differs from the API default (this also keeps the mutation idempotent);
//   - the DaemonSet as written is known (check reads files) and sets it;
//   - an update changes it: the request, not the API server, set it
//     (kubectl edit, kubectl patch, Helm's three-way merge);
//   - the last configuration applied by client-side kubectl apply sets it;
//   - a server-side apply manager owns the field (managedFields, Apply).
//
// Otherwise the policy's value is applied. To keep the API default without
// writing it in an applied configuration, skip the rule with the annotation
// daemonset-guard.io/skip: rolling-update-defaults.
func rollingUpdateDefaults(in *Input) bool {
	ds := in.Object
	defaults := policy.OptionsOf[*RollingUpdateDefaultsOptions](in.Policy, RollingUpdateDefaults)
	chosen := userChoices(in)
	changed := false

	if want := defaults.MaxUnavailable; want != nil && ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		ru := ds.Spec.UpdateStrategy.RollingUpdate
		if isAPIDefault(maxUnavailable(ds)) && !chosen.maxUnavailable && *want != apiDefaultMaxUnavailable {
			if ru == nil {
				ru = &appsv1.RollingUpdateDaemonSet{}
				ds.Spec.UpdateStrategy.RollingUpdate = ru
			}
			ds.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
			v := *want
			ru.MaxUnavailable = &v
			changed = true
		}
	}
	if want := defaults.MinReadySeconds; want != nil {
		if ds.Spec.MinReadySeconds == apiDefaultMinReadySeconds && !chosen.minReadySeconds && *want != apiDefaultMinReadySeconds {
			ds.Spec.MinReadySeconds = *want
			changed = true
		}
	}
	return changed
}

// maxUnavailable returns the DaemonSet's maxUnavailable, nil when unset.
func maxUnavailable(ds *appsv1.DaemonSet) *intstr.IntOrString {
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		return ru.MaxUnavailable
	}
	return nil
}

func isAPIDefault(v *intstr.IntOrString) bool {
	return v == nil || *v == apiDefaultMaxUnavailable
}

// choices records which rollout fields the user set explicitly.
type choices struct {
	maxUnavailable  bool
	minReadySeconds bool
}

func userChoices(in *Input) choices {
	ds := in.Object
	var c choices
	if w := in.Written; w != nil {
		// What the file sets is the user's word, as kubectl apply of it
		// would tell the webhook.
		c = choices{maxUnavailable: maxUnavailable(w) != nil, minReadySeconds: w.Spec.MinReadySeconds != apiDefaultMinReadySeconds}
	}
	if old := in.OldObject; in.Operation == Update {
		c.maxUnavailable = c.maxUnavailable || !equality.Semantic.DeepEqual(maxUnavailable(old), maxUnavailable(ds))
		c.minReadySeconds = c.minReadySeconds || old.Spec.MinReadySeconds != ds.Spec.MinReadySeconds
	}
	if raw, ok := ds.Annotations[lastAppliedAnnotation]; ok {
		var applied struct {
			Spec struct {
				MinReadySeconds *int32 `json:"minReadySeconds"`
				UpdateStrategy  struct {
					RollingUpdate struct {
						MaxUnavailable *intstr.IntOrString `json:"maxUnavailable"`
					} `json:"rollingUpdate"`
				} `json:"updateStrategy"`
			} `json:"spec"`
		}
		// A broken annotation tells nothing; the other sources still count.
		if json.Unmarshal([]byte(raw), &applied) == nil {
			c.maxUnavailable = c.maxUnavailable || applied.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable != nil
			c.minReadySeconds = c.minReadySeconds || applied.Spec.MinReadySeconds != nil
		}
	}
	for _, mf := range ds.ManagedFields {
		if mf.Operation != metav1.ManagedFieldsOperationApply {
			continue
		}
		set := fieldSet(mf)
		c.maxUnavailable = c.maxUnavailable || owns(set, maxUnavailablePath)
		c.minReadySeconds = c.minReadySeconds || owns(set, minReadySecondsPath)
	}
	return c
}
