package policy

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/apps"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	"k8s.io/kubernetes/pkg/apis/core"
	corev1conversion "k8s.io/kubernetes/pkg/apis/core/v1"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
)

// Default returns the built-in policy, used when no file is given. It is safe
// for any cluster: it injects no toleration and changes no rollout setting, so
// installing the webhook alone never moves a pod; it denies only what can never
// work and warns about the rest.
func Default() *Policy {
	p := &Policy{APIVersion: APIVersion, Kind: Kind}
	p.setDefaults()
	return p
}

// defaultUnstableLabels change with every release of a chart or an app, which
// makes them unfit for a selector that can never change.
var defaultUnstableLabels = []string{
	"helm.sh/chart",
	"chart",
	"app.kubernetes.io/version",
	"version",
	"release",
	"heritage",
	"pod-template-hash",
	"controller-revision-hash",
	"pod-template-generation",
}

func (p *Policy) setDefaults() {
	defaults := map[Action][]string{
		Deny:  {SelectorImmutable, SelectorMatchesTemplate, RestartPolicyAlways},
		Warn:  {TargetsNodes, SelectorStableLabels, RolloutBudget},
		Apply: MutationRules,
	}
	for action, names := range defaults {
		for _, name := range names {
			c := p.rule(name)
			if c.Action == "" {
				c.Action = action
			}
			if c.OnError == "" {
				c.OnError = OnErrorAllow
			}
		}
	}
	if p.Rules.SelectorStableLabels.UnstableLabels == nil {
		p.Rules.SelectorStableLabels.UnstableLabels = slices.Clone(defaultUnstableLabels)
	}
	if p.Rules.RolloutBudget.MaxUnavailable == nil {
		half := intstr.FromString("50%")
		p.Rules.RolloutBudget.MaxUnavailable = &half
	}
}

// Load reads, defaults and validates the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy file: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a policy document strictly (unknown fields are errors),
// applies the defaults and validates the result.
func Parse(data []byte) (*Policy, error) {
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	p := &Policy{}
	// sigs.k8s.io/json names the full path of an unknown or duplicate field,
	// as the API server does.
	strict, err := kjson.UnmarshalStrict(raw, p, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("decoding policy: %w", errors.Join(strict...))
	}
	p.setDefaults()
	if errs := p.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid policy: %w", errs.ToAggregate())
	}
	return p, nil
}

// Validate returns every invalid field of a defaulted policy with its path.
func (p *Policy) Validate() field.ErrorList {
	var errs field.ErrorList
	if p.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), p.APIVersion, []string{APIVersion}))
	}
	if p.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), p.Kind, []string{Kind}))
	}
	mutation := field.NewPath("mutation")
	errs = append(errs, validateTolerations(mutation.Child("tolerations"), p.Mutation.Tolerations)...)
	ru := mutation.Child("rollingUpdate")
	if v := p.Mutation.RollingUpdate.MaxUnavailable; v != nil {
		// As the API server validates a DaemonSet's rolling update, with
		// the maxSurge of 0 that a DaemonSet injected into has by default.
		errs = append(errs, appsvalidation.ValidateRollingUpdateDaemonSet(&apps.RollingUpdateDaemonSet{MaxUnavailable: *v, MaxSurge: intstr.FromInt32(0)}, ru)...)
	}
	if v := p.Mutation.RollingUpdate.MinReadySeconds; v != nil {
		errs = append(errs, corevalidation.ValidateNonnegativeField(int64(*v), ru.Child("minReadySeconds"))...)
	}

	rules := field.NewPath("rules")
	for _, name := range ValidationRules {
		errs = append(errs, oneOf(rules.Child(name, "action"), p.Action(name), Deny, Warn, Off)...)
	}
	for _, name := range MutationRules {
		errs = append(errs, oneOf(rules.Child(name, "action"), p.Action(name), Apply, Off)...)
	}
	for _, name := range append(slices.Clone(ValidationRules), MutationRules...) {
		errs = append(errs, oneOf(rules.Child(name, "onError"), p.rule(name).OnError, OnErrorAllow, OnErrorDeny)...)
	}
	errs = append(errs, validateShare(rules.Child(RolloutBudget, "maxUnavailable"), *p.Rules.RolloutBudget.MaxUnavailable)...)
	if len(errs) == 0 {
		errs = append(errs, p.validateCoherence()...)
	}

	known := append(slices.Clone(ValidationRules), MutationRules...)
	for i, e := range p.Exemptions {
		path := field.NewPath("exemptions").Index(i)
		if len(e.Namespaces) == 0 {
			errs = append(errs, field.Required(path.Child("namespaces"), "list the namespaces the exemption applies to"))
		}
		if len(e.Rules) == 0 {
			errs = append(errs, field.Required(path.Child("rules"), "list the rules the namespaces are exempt from"))
		}
		for j, r := range e.Rules {
			if !slices.Contains(known, r) {
				errs = append(errs, field.NotSupported(path.Child("rules").Index(j), r, known))
			}
		}
	}
	return errs
}

// validateCoherence refuses a policy whose own rules would deny what its
// mutation injects: the guard must never refuse the defaults it adds.
func (p *Policy) validateCoherence() field.ErrorList {
	injected, budget := p.Mutation.RollingUpdate.MaxUnavailable, p.Rules.RolloutBudget.MaxUnavailable
	if injected == nil || p.Action(RollingUpdateDefaults) != Apply || p.Action(RolloutBudget) != Deny {
		return nil
	}
	n, ok := firstBudgetConflict(*injected, *budget)
	if !ok {
		return nil
	}
	down, _ := intstr.GetScaledValueFromIntOrPercent(injected, n, true)
	allowed, _ := intstr.GetScaledValueFromIntOrPercent(budget, n, false)
	return field.ErrorList{field.Invalid(field.NewPath("mutation", "rollingUpdate", "maxUnavailable"), injected.String(), fmt.Sprintf(
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

func oneOf[T ~string](path *field.Path, v T, allowed ...T) field.ErrorList {
	if slices.Contains(allowed, v) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, v, allowed)}
}

// validateShare accepts a positive count or a percentage in (0%, 100%].
func validateShare(path *field.Path, v intstr.IntOrString) field.ErrorList {
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

// validateTolerations validates the policy's tolerations with the API
// server's own function, so that a toleration the API would refuse in a pod
// template can never be injected into every DaemonSet, and refuses those the
// DaemonSet controller adds itself.
func validateTolerations(path *field.Path, tolerations []corev1.Toleration) field.ErrorList {
	internal := make([]core.Toleration, len(tolerations))
	for i := range tolerations {
		if err := corev1conversion.Convert_v1_Toleration_To_core_Toleration(&tolerations[i], &internal[i], nil); err != nil {
			return field.ErrorList{field.Invalid(path.Index(i), tolerations[i], err.Error())}
		}
	}
	errs := corevalidation.ValidateTolerations(internal, path, corevalidation.PodValidationOptions{})
	for i, t := range tolerations {
		if daemonpod.AddedByController(t.Key) {
			errs = append(errs, field.Forbidden(path.Index(i).Child("key"), fmt.Sprintf("the DaemonSet controller adds a toleration of %s to every daemon pod itself; adding it to templates would only roll every DaemonSet", t.Key)))
		}
	}
	return errs
}
