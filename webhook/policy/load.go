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
	for i, t := range p.Mutation.Tolerations {
		errs = append(errs, validateToleration(mutation.Child("tolerations").Index(i), t)...)
	}
	ru := mutation.Child("rollingUpdate")
	if v := p.Mutation.RollingUpdate.MaxUnavailable; v != nil {
		errs = append(errs, validateShare(ru.Child("maxUnavailable"), *v)...)
	}
	if v := p.Mutation.RollingUpdate.MinReadySeconds; v != nil && *v < 0 {
		errs = append(errs, field.Invalid(ru.Child("minReadySeconds"), *v, "must be zero or more"))
	}

	rules := field.NewPath("rules")
	for _, name := range ValidationRules {
		errs = append(errs, validateAction(rules.Child(name, "action"), p.Action(name), Deny, Warn, Off)...)
	}
	for _, name := range MutationRules {
		errs = append(errs, validateAction(rules.Child(name, "action"), p.Action(name), Apply, Off)...)
	}
	for _, name := range append(slices.Clone(ValidationRules), MutationRules...) {
		if onError := p.rule(name).OnError; onError != OnErrorAllow && onError != OnErrorDeny {
			errs = append(errs, field.NotSupported(rules.Child(name, "onError"), onError, []string{string(OnErrorAllow), string(OnErrorDeny)}))
		}
	}
	errs = append(errs, validateShare(rules.Child(RolloutBudget, "maxUnavailable"), *p.Rules.RolloutBudget.MaxUnavailable)...)

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

func validateAction(path *field.Path, a Action, allowed ...Action) field.ErrorList {
	if slices.Contains(allowed, a) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, x := range allowed {
		names[i] = string(x)
	}
	return field.ErrorList{field.NotSupported(path, a, names)}
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

func validateToleration(path *field.Path, t corev1.Toleration) field.ErrorList {
	var errs field.ErrorList
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			errs = append(errs, field.Invalid(path.Child("value"), t.Value, "must be empty when operator is Exists"))
		}
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			errs = append(errs, field.Invalid(path.Child("operator"), t.Operator, "must be Exists when key is empty"))
		}
	default:
		errs = append(errs, field.NotSupported(path.Child("operator"), t.Operator, []string{string(corev1.TolerationOpExists), string(corev1.TolerationOpEqual)}))
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		errs = append(errs, field.NotSupported(path.Child("effect"), t.Effect, []string{string(corev1.TaintEffectNoSchedule), string(corev1.TaintEffectPreferNoSchedule), string(corev1.TaintEffectNoExecute)}))
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		errs = append(errs, field.Invalid(path.Child("tolerationSeconds"), *t.TolerationSeconds, "only applies to effect NoExecute"))
	}
	if daemonpod.AddedByController(t.Key) {
		errs = append(errs, field.Forbidden(path.Child("key"), fmt.Sprintf("the DaemonSet controller adds a toleration of %s to every daemon pod itself; adding it to templates would only roll every DaemonSet", t.Key)))
	}
	return errs
}
