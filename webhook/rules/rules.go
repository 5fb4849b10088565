// Package rules holds daemonset-guard's rules as pure functions of a
// DaemonSet, its previous version, the policy and a view of the nodes, and
// the registry they declare themselves in: each rule's file declares
// everything about it once (see Rule), and Builtin collects them. The
// webhook and the command line run the same Catalog, so an answer offline
// equals the answer at admission.
//
// Each rule runs isolated from the others: a rule that panics or cannot be
// evaluated is answered as its policy's onError says, and reported to the
// caller, which logs and counts it. No rule can take another, or the request,
// down with it.
package rules

import (
	"cmp"
	"fmt"
	"iter"
	"runtime/debug"
	"strconv"
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
	Coverage(spec *corev1.PodSpec) (inventory.Coverage, error)
	Moved(oldSpec, newSpec *corev1.PodSpec) (lost, gained []string, err error)
	NotReady(spec *corev1.PodSpec) (int, error)
	Mixed(spec *corev1.PodSpec, key string) (map[string]int, error)
}

// Input is everything a rule may look at.
type Input struct {
	Operation Operation
	Object    *appsv1.DaemonSet
	// OldObject is the stored DaemonSet on Update, nil on Create.
	OldObject *appsv1.DaemonSet
	// Written is the DaemonSet as its author wrote it, before the API
	// server's defaults, when that is known (check reads it from a file);
	// nil at admission, where only the defaulted object is seen.
	Written *appsv1.DaemonSet
	Policy  *policy.Policy
	// Nodes is nil when no node information exists; node rules then say so.
	Nodes Nodes
	// PriorityClasses is nil when the cluster's PriorityClasses are not
	// known; priority-class then knows only the system classes.
	PriorityClasses PriorityClasses
	// Namespaces is nil when the namespaces' annotations are not known;
	// namespace-placement then says so, where the policy asks for it.
	Namespaces Namespaces
	// Workloads are the pod controllers of the cluster when they are
	// known (audit, check --kubeconfig); nil at admission.
	Workloads Workloads

	catalog  *Catalog
	coverage func() (inventory.Coverage, error)
	baseline func() *appsv1.DaemonSet
}

// Coverage returns the nodes the new template would run on, computed once per
// Input however many rules ask.
func (in *Input) Coverage() (inventory.Coverage, error) {
	if in.coverage == nil {
		in.coverage = sync.OnceValues(func() (inventory.Coverage, error) { return in.Nodes.Coverage(&in.Object.Spec.Template.Spec) })
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
	// Rule is the rule that found it; empty for what is said of the
	// request itself (an unknown name in the skip annotation).
	Rule string
	// Action is Deny or Warn. Rules leave it empty to mean "what the policy
	// says for this rule"; advisory findings set Warn.
	Action  policy.Action
	Field   *field.Path
	Message string
}

// String formats the finding as an admission warning.
func (f Finding) String() string {
	return fmt.Sprintf("[%s] %s: %s", cmp.Or(f.Rule, "daemonset-guard"), f.Field, f.Message)
}

// FieldError formats a denying finding for apierrors.NewInvalid.
func (f Finding) FieldError() *field.Error {
	return field.Forbidden(f.Field, fmt.Sprintf("[%s] %s", f.Rule, f.Message))
}

// RuleError is a rule that could not be evaluated: it returned an error or
// panicked (Stack is then set).
type RuleError struct {
	Rule  string
	Err   error
	Stack []byte
}

func (e RuleError) Error() string { return fmt.Sprintf("rule %s: %v", e.Rule, e.Err) }

// Unwrap returns the rule's error.
func (e RuleError) Unwrap() error { return e.Err }

// unevaluated is the finding that answers for a rule that could not be
// evaluated, as the policy's onError says.
func (in *Input) unevaluated(e RuleError) Finding {
	f := Finding{Rule: e.Rule, Field: field.NewPath("spec"), Action: policy.Warn,
		Message: fmt.Sprintf("the rule could not be evaluated, so it was not applied (its onError is allow): %v", e.Err)}
	if in.Policy.OnError(e.Rule) == policy.OnErrorDeny {
		f.Action = policy.Deny
		f.Message = fmt.Sprintf("the rule could not be evaluated, and its onError is deny: %v", e.Err)
	}
	return f
}

// isolate runs one rule, turning a panic into an error with its stack.
func isolate[T any](rule string, run func() (T, error)) (result T, ruleErr *RuleError) {
	defer func() {
		if r := recover(); r != nil {
			ruleErr = &RuleError{Rule: rule, Err: fmt.Errorf("panic: %v", r), Stack: debug.Stack()}
		}
	}()
	result, err := run()
	if err != nil {
		return result, &RuleError{Rule: rule, Err: err}
	}
	return result, nil
}

// Validate runs every enabled validation rule of the catalog and returns
// the findings, each with its final action, and the rules that could not be
// evaluated (already answered among the findings as their onError says).
func (c *Catalog) Validate(in *Input) ([]Finding, []RuleError) {
	in.catalog = c
	out := in.skipFindings()
	var errs []RuleError
	for _, r := range c.rules {
		if r.Kind != policy.Validating {
			continue
		}
		action := in.Policy.Action(r.Name)
		if action == policy.Off || !applies(in, r.Name) {
			continue
		}
		findings, err := isolate(r.Name, func() ([]Finding, error) { return r.Check(in) })
		if err != nil {
			errs = append(errs, *err)
			findings = []Finding{in.unevaluated(*err)}
		}
		if len(findings) > 0 && skipRequested(in, r.Name) {
			findings = append(findings, skipRefused(r.Name))
		}
		for _, f := range findings {
			if f.Action == "" {
				f.Action = action
			}
			out = append(out, f)
		}
	}
	pending, pendingErrs := pendingMutations(in)
	out = append(out, pending...)
	errs = append(errs, pendingErrs...)
	// An object being deleted must always be able to drop its finalizers,
	// whatever else is wrong with it.
	if in.Object.DeletionTimestamp != nil {
		for i := range out {
			out[i].Action = policy.Warn
		}
	}
	return out, errs
}

// Applies reports whether the policy applies the rule to the DaemonSet: the
// rule is not off, the DaemonSet's namespace is not exempt from it, and its
// skip annotation does not skip it.
func Applies(p *policy.Policy, ds *appsv1.DaemonSet, rule string) bool {
	return p.Action(rule) != policy.Off && applies(&Input{Object: ds, Policy: p}, rule)
}

// applies reports whether the rule applies to the object, given the policy's
// namespace exemptions and the object's skip annotation, which switches off
// only the rules the policy lets it.
func applies(in *Input, rule string) bool {
	if in.Policy.Exempt(in.Object.Namespace, rule) {
		return false
	}
	return !skipRequested(in, rule) || !in.Policy.Skippable(rule)
}

// skipRequested reports whether the object's skip annotation names the rule
// or says "*".
func skipRequested(in *Input, rule string) bool {
	for s := range skipEntries(in) {
		if s == "*" || s == rule {
			return true
		}
	}
	return false
}

// skipEntries yields the entries of the object's skip annotation, trimmed,
// leaving out empty ones.
func skipEntries(in *Input) iter.Seq[string] {
	return func(yield func(string) bool) {
		for s := range strings.SplitSeq(in.Object.Annotations[SkipAnnotation], ",") {
			if s = strings.TrimSpace(s); s != "" && !yield(s) {
				return
			}
		}
	}
}

// skipRefused says, beside what a rule found, that the skip annotation asked
// to skip it and the policy does not let it.
func skipRefused(rule string) Finding {
	return Finding{Rule: rule, Action: policy.Warn, Field: field.NewPath("metadata", "annotations").Key(SkipAnnotation),
		Message: "the skip annotation asks to skip this rule, but the policy does not let it be skipped (a rule at deny is skippable only when " +
			"the policy lists it under skipAnnotation.rules), so it was applied"}
}

// skipFindings warns about names in the skip annotation that are no rule: a
// misspelt name must never pass for a skip that works. The request is judged
// as if the name were not there.
func (in *Input) skipFindings() []Finding {
	var unknown []string
	for s := range skipEntries(in) {
		if s != "*" && !in.Policy.Known(s) {
			unknown = append(unknown, strconv.Quote(s))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return []Finding{{Action: policy.Warn, Field: field.NewPath("metadata", "annotations").Key(SkipAnnotation),
		Message: fmt.Sprintf("no rule is named %s, so nothing was skipped for it; the rules are %s (daemonset-guard rules lists them), or * for all",
			strings.Join(unknown, ", "), strings.Join(in.catalog.Names(), ", "))}}
}
