package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// MutableFields returns a DaemonSet that holds only the fields Mutate may
// change, sharing them with ds. A JSON patch between the projections taken
// before and after Mutate is the patch between the whole objects, at a
// fraction of the cost of marshalling and diffing 4 KB twice. Mutate replaces
// the fields rather than writing into them, so the first projection keeps
// the values from before.
func (c *Catalog) MutableFields(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	projection := &appsv1.DaemonSet{}
	c.shareMutableFields(ds, projection)
	return projection
}

// shareMutableFields copies, sharing them, the fields Mutate may change: the
// mutation rules' and the annotations, where it records itself.
func (c *Catalog) shareMutableFields(from, to *appsv1.DaemonSet) {
	to.Annotations = from.Annotations
	for _, r := range c.rules {
		if r.Kind == policy.Mutating {
			r.Fields(from, to)
		}
	}
}

// ruleScratch is where Mutate lets a rule work: an object that shares all
// of the one mutated but the fields any mutation rule may change, which it
// holds deep copies of, so that a rule that fails half-way (even in another
// rule's fields) leaves no trace. Its three DaemonSets (1.2 KB each) are
// reused from rule to rule: what a rule changes lives in slices, maps and
// pointers made for it, so handing them to the mutated object leaves nothing
// shared with the scratch.
type ruleScratch struct{ object, fields, copied appsv1.DaemonSet }

func (c *Catalog) trialOf(s *ruleScratch, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	s.fields = appsv1.DaemonSet{}
	c.shareMutableFields(ds, &s.fields)
	s.fields.DeepCopyInto(&s.copied)
	s.object = *ds
	c.shareMutableFields(&s.copied, &s.object)
	return &s.object
}

// Mutate applies every enabled mutation rule to in.Object and returns the
// names of those that changed it, and the rules that could not be evaluated.
// Each rule works on a copy of the fields it may change, which replaces the
// object's only when it succeeds, so a rule that fails changes nothing. It is
// idempotent: a second call on its own result changes nothing. The rules that
// changed the object are added to its MutatedAnnotation, so that a user can
// see why a field has a value they did not write.
//
// Mutate assigns the object's fields and never writes into a slice, map or
// pointer it did not make, so asking it what it would change on a shallow
// copy (probeOf) leaves the original as it was.
func (c *Catalog) Mutate(in *Input) ([]string, []RuleError) {
	in.catalog = c
	var changed []string
	var errs []RuleError
	var scratch *ruleScratch
	for _, r := range c.rules {
		if r.Kind != policy.Mutating || in.Policy.Action(r.Name) != policy.Apply || !applies(in, r.Name) {
			continue
		}
		if scratch == nil {
			scratch = &ruleScratch{}
		}
		trial := *in
		trial.Object = c.trialOf(scratch, in.Object)
		did, err := isolate(r.Name, func() (bool, error) { return r.Apply(&trial), nil })
		switch {
		case err != nil:
			errs = append(errs, *err)
		case did:
			r.Fields(trial.Object, in.Object)
			changed = append(changed, r.Name)
		}
	}
	if len(changed) == 0 {
		return nil, errs
	}
	recorded := append(mutatedRules(in.Object), changed...)
	slices.Sort(recorded)
	annotations := maps.Clone(in.Object.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[MutatedAnnotation] = strings.Join(slices.Compact(recorded), ",")
	in.Object.Annotations = annotations
	return changed, errs
}

// probeOf returns a shallow copy of ds, for Mutate to change in its place.
func probeOf(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	probe := *ds
	return &probe
}

// MutationFindings answers, as their onError says, for the mutation rules
// that could not be evaluated, so that the mutating webhook can warn (or
// deny) with the same words the validating one uses.
func MutationFindings(in *Input, errs []RuleError) []Finding {
	out := make([]Finding, len(errs))
	for i, e := range errs {
		out[i] = in.unevaluated(e)
	}
	return out
}

// mutatedRules returns the rules that the object's MutatedAnnotation records.
func mutatedRules(ds *appsv1.DaemonSet) []string {
	v := ds.Annotations[MutatedAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// pendingMutations checks, on a copy, whether the mutating webhook would still
// change the object. It fails open, so while it is unreachable (or while one
// replica restarts and another answers) an object can reach validation
// without its defaults; admitting it would leave it half-mutated, so it is
// refused with "retry". When the object shows that the mutation did run or
// that someone else sets those fields, a retry would meet the same answer, so
// the finding is a warning instead: the guard never refuses in a loop.
func pendingMutations(in *Input) ([]Finding, []RuleError) {
	if in.Object.DeletionTimestamp != nil {
		return nil, nil
	}
	probe := *in
	probe.Object = probeOf(in.Object)
	changed, errs := in.catalog.Mutate(&probe)
	out := MutationFindings(in, errs)
	for _, name := range changed {
		out = append(out, in.pendingMutation(name))
	}
	return out, errs
}

func (in *Input) pendingMutation(name string) Finding {
	f := Finding{Rule: name, Field: field.NewPath("spec"), Action: policy.Warn}
	rule, _ := in.catalog.Rule(name)
	others := in.otherManagers(rule.Owned)
	switch {
	case slices.Contains(mutatedRules(in.Object), name):
		f.Message = "daemonset-guard's mutating webhook has applied this rule to this DaemonSet, but the object reached validation without its change: " +
			"another mutating webhook, a field manager or a webhook replica on an older policy sets these fields back" + ownedBy(others) +
			"; admitted as it is, since a retry would meet the same answer"
	case len(others) > 0:
		f.Message = "the mutating webhook has not applied this rule, and the fields it sets are owned by " + strings.Join(others, ", ") +
			"; admitted as it is, since a retry may meet the same answer"
	default:
		f.Action = policy.Deny
		f.Message = "the mutating webhook has not applied this rule, which it fails open on when it cannot be reached; retry the request " +
			"(if this repeats, another mutating webhook or a webhook replica on an older policy may be undoing daemonset-guard's change)"
	}
	return f
}

func ownedBy(managers []string) string {
	if len(managers) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the fields are owned by %s)", strings.Join(managers, ", "))
}
