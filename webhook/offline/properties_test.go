package offline_test

import (
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/daemonset-guard/daemonset-guard/internal/generate"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestMutationProperties checks, over generated DaemonSets and policies,
// what must hold whatever the input: the mutation is idempotent, changes
// only the fields its rules declare, and never touches the template of an
// update that leaves the template alone, even after the policy changed.
func TestMutationProperties(t *testing.T) {
	rng := seed.Rand(t)
	nodes := inventory.New(corpusNodes(t)...)
	catalog := rules.Builtin()
	for i := range 500 {
		pol, ds := generate.Policy(rng), generate.DaemonSet(rng, i)
		res := offline.Evaluator{Rules: rules.Builtin(), Policy: pol, Nodes: nodes}.Evaluate(ds)
		if res.Verdict == offline.Failed || len(res.RuleErrors) > 0 {
			t.Fatalf("case %d: could not be evaluated: %s %+v", i, res.Error, res.RuleErrors)
		}

		again := offline.Evaluator{Rules: rules.Builtin(), Policy: pol, Nodes: nodes}.Evaluate(res.Admitted)
		if len(again.Patch) > 0 {
			t.Fatalf("case %d: not idempotent; the second pass patched %+v", i, again.Patch)
		}

		// Outside the fields its rules declare, the mutation leaves the
		// object as the API server defaulted it: a rule that wrote through
		// a map or slice it shares with the object would show here.
		defaulted := ds.DeepCopy()
		offline.Default(defaulted)
		outside := res.Admitted.DeepCopy()
		for _, r := range catalog.Rules() {
			if r.Kind == policy.Mutating {
				r.Fields(defaulted, outside)
			}
		}
		outside.Annotations = defaulted.Annotations
		if !equality.Semantic.DeepEqual(outside, defaulted) {
			t.Fatalf("case %d: the mutation changed a field no rule declares", i)
		}

		// The cluster's policy changes; a user then changes only a label.
		old := res.Admitted
		updated := old.DeepCopy()
		updated.Labels = map[string]string{"team": strconv.Itoa(i)}
		rules.Builtin().Mutate(&rules.Input{Operation: rules.Update, Object: updated, OldObject: old, Policy: generate.Policy(rng), Nodes: nodes})
		if !equality.Semantic.DeepEqual(updated.Spec.Template, old.Spec.Template) {
			t.Fatalf("case %d: an update that left the template alone got a template change", i)
		}
	}
}

// TestValidationChangesNothing checks that validating, which dry-runs the
// mutation on a copy that shares most of the object, leaves the object as it
// was, on objects the mutation would change and on objects it would not.
func TestValidationChangesNothing(t *testing.T) {
	rng := seed.Rand(t)
	nodes := inventory.New(corpusNodes(t)...)
	for i := range 500 {
		ds := generate.DaemonSet(rng, i)
		offline.Default(ds)
		if i%2 == 1 {
			rules.Builtin().Mutate(&rules.Input{Operation: rules.Create, Object: ds, Policy: generate.Policy(rng), Nodes: nodes})
		}
		before := ds.DeepCopy()
		rules.Builtin().Validate(&rules.Input{Operation: rules.Create, Object: ds, Policy: generate.Policy(rng), Nodes: nodes})
		if !equality.Semantic.DeepEqual(before, ds) {
			t.Fatalf("case %d: validation changed the object", i)
		}
	}
}
