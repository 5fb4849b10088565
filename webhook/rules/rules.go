// Package rules holds daemonset-guard's rules as pure functions of a
// DaemonSet, its previous version, the policy and a view of the nodes. The
// webhook and the command line run the same functions, so an answer offline
// equals the answer at admission.
package rules

import (
	"fmt"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// Annotations read and written on DaemonSets.
const (
	// SkipAnnotation lists rules, comma-separated, that do not apply to the
	// DaemonSet; "*" skips them all.
	SkipAnnotation = "daemonset-guard.io/skip"
	// MutatedAnnotation lists the mutation rules that have changed the DaemonSet.
	MutatedAnnotation = "daemonset-guard.io/mutated"
)

// Operation is the admission operation being judged.
type Operation string

// Operations the rules judge.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
)

// Nodes is the view of the cluster's nodes that node rules need.
// *inventory.Inventory implements it.
type Nodes interface {
	Synced() bool
	Coverage(spec *corev1.PodSpec) inventory.Coverage
	Lost(oldSpec, newSpec *corev1.PodSpec) []string
}

// Input is everything a rule may look at.
type Input struct {
	Operation Operation
	Object    *appsv1.DaemonSet
	// OldObject is the stored DaemonSet on Update, nil on Create.
	OldObject *appsv1.DaemonSet
	Policy    *policy.Policy
	// Nodes is nil when no node information exists; node rules then say so.
	Nodes Nodes

	coverage func() inventory.Coverage
}

// Coverage returns the nodes the new template would run on, computed once per
// Input however many rules ask.
func (in *Input) Coverage() inventory.Coverage {
	if in.coverage == nil {
		in.coverage = sync.OnceValue(func() inventory.Coverage { return in.Nodes.Coverage(&in.Object.Spec.Template.Spec) })
	}
	return in.coverage()
}

// nodesReady reports whether node rules can be evaluated, with the finding
// that says why not when they cannot.
func (in *Input) nodesReady(rule string) (bool, []Finding) {
	switch {
	case in.Nodes == nil:
		return false, []Finding{{Rule: rule, Action: policy.Warn, Field: field.NewPath("spec", "template", "spec"), Message: "no node information was given, so node placement was not checked"}}
	case !in.Nodes.Synced():
		return false, []Finding{{Rule: rule, Action: policy.Warn, Field: field.NewPath("spec", "template", "spec"), Message: "the node inventory has not synced yet, so node placement was not checked"}}
	}
	return true, nil
}

// Finding is one thing a rule found.
type Finding struct {
	Rule string
	// Action is Deny or Warn. Rules leave it empty to mean "what the policy
	// says for this rule"; advisory findings set Warn.
	Action  policy.Action
	Field   *field.Path
	Message string
}

// String formats the finding as an admission warning.
func (f Finding) String() string {
	return fmt.Sprintf("[%s] %s: %s", f.Rule, f.Field, f.Message)
}

// FieldError formats a denying finding for apierrors.NewInvalid.
func (f Finding) FieldError() *field.Error {
	return field.Forbidden(f.Field, fmt.Sprintf("[%s] %s", f.Rule, f.Message))
}

// validationRule is one validation rule: it reports what it finds, and the
// engine decides from the policy whether that denies, warns or is ignored.
type validationRule struct {
	name  string
	check func(in *Input) []Finding
}

var validationRules = []validationRule{
	{policy.SelectorImmutable, selectorImmutable},
	{policy.SelectorMatchesTemplate, selectorMatchesTemplate},
	{policy.RestartPolicyAlways, restartPolicyAlways},
	{policy.TargetsNodes, targetsNodes},
	{policy.SelectorStableLabels, selectorStableLabels},
	{policy.RolloutBudget, rolloutBudget},
}

// Validate runs every enabled validation rule and returns the findings, each
// with its final action.
func Validate(in *Input) []Finding {
	var out []Finding
	for _, r := range validationRules {
		action := in.Policy.Action(r.name)
		if action == policy.Off || !applies(in, r.name) {
			continue
		}
		for _, f := range r.check(in) {
			if f.Action == "" {
				f.Action = action
			}
			// An object being deleted must always be able to drop its
			// finalizers, whatever else is wrong with it.
			if f.Action == policy.Deny && in.Object.DeletionTimestamp != nil {
				f.Action = policy.Warn
			}
			out = append(out, f)
		}
	}
	return append(out, pendingMutations(in)...)
}

// pendingMutations denies an object that the mutating webhook would still
// change. That webhook fails open, so while it is unreachable (or while one
// replica restarts and another answers) an object can reach validation
// without its defaults; admitting it would leave it half-mutated. After a
// successful mutation, mutating again changes nothing, so this never fires.
func pendingMutations(in *Input) []Finding {
	if in.Object.DeletionTimestamp != nil {
		return nil
	}
	probe := *in
	probe.Object = withOwnMutableFields(in.Object)
	var out []Finding
	for _, rule := range Mutate(&probe) {
		out = append(out, Finding{Rule: rule, Action: policy.Deny, Field: field.NewPath("spec"),
			Message: "the mutating webhook has not applied this rule, which it fails open on when it cannot be reached; retry the request"})
	}
	return out
}

// applies reports whether the rule applies to the object, given the policy's
// namespace exemptions and the object's skip annotation.
func applies(in *Input, rule string) bool {
	if in.Policy.Exempt(in.Object.Namespace, rule) {
		return false
	}
	skip, ok := in.Object.Annotations[SkipAnnotation]
	if !ok {
		return true
	}
	for s := range strings.SplitSeq(skip, ",") {
		if s = strings.TrimSpace(s); s == "*" || s == rule {
			return false
		}
	}
	return true
}
