// Package offline answers, without an API server, what admission would do
// to a DaemonSet: it plays the API server's part (static defaulting before and
// after mutating admission) around the very rules the webhooks run, so an
// answer offline equals the answer at admission.
package offline

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	appsdefaults "k8s.io/kubernetes/pkg/apis/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Verdicts.
const (
	Admitted = "admitted"
	Denied   = "denied"
	// Failed means the DaemonSet could not be evaluated at all; Error says why.
	Failed = "error"
)

// Result is what admission would do to one DaemonSet.
type Result struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Verdict is "admitted", "denied" or "error".
	Verdict string `json:"verdict"`
	// Operation is CREATE, or UPDATE when the DaemonSet was judged as an
	// update of the stored one.
	Operation rules.Operation `json:"operation"`
	// Error says why the DaemonSet could not be evaluated (verdict "error").
	Error string `json:"error,omitempty"`
	// RuleErrors are the rules that could not be evaluated; the findings
	// hold their answers, as their onError says.
	RuleErrors []RuleError `json:"ruleErrors,omitempty"`
	// Findings are the validating webhook's denials and warnings.
	Findings []Finding `json:"findings,omitempty"`
	// Mutations names the mutation rules that changed the DaemonSet.
	Mutations []string `json:"mutations,omitempty"`
	// Patch is the mutating webhook's JSON patch, on the defaulted object.
	Patch []PatchOperation `json:"patch,omitempty"`
	// Coverage is where the mutated DaemonSet would run; nil without nodes.
	Coverage *inventory.Coverage `json:"coverage,omitempty"`
	// Admitted is the object as the API server would store it.
	Admitted *appsv1.DaemonSet `json:"-"`
	// MergePatch is the mutation as a JSON merge patch (RFC 7386): merged into
	// the DaemonSet as written, it gives the mutated DaemonSet without the API
	// server's defaults, which a GitOps repository can commit instead of
	// relying on admission.
	MergePatch []byte `json:"-"`
}

// Finding is a rule's finding with its field path as a string.
type Finding struct {
	Rule    string        `json:"rule"`
	Action  policy.Action `json:"action"`
	Field   string        `json:"field"`
	Message string        `json:"message"`
}

// RuleError is a rule that could not be evaluated.
type RuleError struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// PatchOperation is one JSON patch operation.
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Default applies the API server's static defaults for apps/v1 DaemonSets,
// with the upstream defaulting functions.
func Default(ds *appsv1.DaemonSet) {
	appsdefaults.SetObjectDefaults_DaemonSet(ds)
}

// Evaluator answers, as admission would, with one catalog of rules, one
// policy and one view of the nodes. check and audit both use it, so neither
// holds rule logic of its own.
type Evaluator struct {
	Rules  *rules.Catalog
	Policy *policy.Policy
	// Nodes may be nil: node rules then say that placement was not checked.
	Nodes rules.Nodes
	// PriorityClasses may be nil: priority-class then knows only the
	// system classes.
	PriorityClasses rules.PriorityClasses
	// Namespaces may be nil: namespace-placement then says, where the
	// policy asks for it, that they were not checked.
	Namespaces rules.Namespaces
	// Workloads may be nil: selector-overlap then says nothing, as at
	// admission.
	Workloads rules.Workloads
}

// Evaluate runs admission for the creation of written, a DaemonSet as a user
// wrote it: defaulting, the mutating webhook's rules, defaulting again, then
// the validating webhook's rules on the final object. A DaemonSet that
// cannot be evaluated gets the verdict "error" and says why; Evaluate itself
// never fails, so that one DaemonSet cannot stop a report.
func (e Evaluator) Evaluate(written *appsv1.DaemonSet) *Result {
	return e.evaluate(written, nil)
}

// EvaluateUpdate runs admission for the update of live, the DaemonSet as
// stored, by written, as `kubectl apply` of the file would send it: the
// file's object, defaulted, keeping what the file does not say of the
// stored object's metadata (the annotations it does not set, its
// managedFields) and the stored status.
func (e Evaluator) EvaluateUpdate(written, live *appsv1.DaemonSet) *Result {
	return e.evaluate(written, live)
}

// updated is the object an update of live by written sends to admission,
// before defaulting.
func updated(written, live *appsv1.DaemonSet) *appsv1.DaemonSet {
	ds := written.DeepCopy()
	annotations := maps.Clone(live.Annotations)
	if annotations == nil && len(ds.Annotations) > 0 {
		annotations = map[string]string{}
	}
	maps.Copy(annotations, ds.Annotations)
	ds.Annotations = annotations
	ds.UID, ds.ResourceVersion, ds.Generation, ds.CreationTimestamp = live.UID, live.ResourceVersion, live.Generation, live.CreationTimestamp
	ds.ManagedFields = live.ManagedFields
	ds.Status = *live.Status.DeepCopy()
	return ds
}

// evaluate runs admission for a create (live nil) or an update of live.
func (e Evaluator) evaluate(written, live *appsv1.DaemonSet) (res *Result) {
	pol, nodes := e.Policy, e.Nodes
	op := rules.Create
	res = &Result{Namespace: written.Namespace, Name: written.Name, Verdict: Admitted, Operation: op}
	defer func() {
		if r := recover(); r != nil {
			res = &Result{Namespace: written.Namespace, Name: written.Name, Verdict: Failed, Error: fmt.Sprintf("panic: %v", r)}
		}
	}()
	defaulted := written.DeepCopy()
	if live != nil {
		op, res.Operation = rules.Update, rules.Update
		defaulted = updated(written, live)
	}
	Default(defaulted)
	mutated := defaulted.DeepCopy()
	mutations, errs := e.Rules.Mutate(&rules.Input{Operation: op, Object: mutated, OldObject: live, Written: written, Policy: pol, Nodes: nodes, PriorityClasses: e.PriorityClasses, Namespaces: e.Namespaces, Workloads: e.Workloads})
	res.Mutations = mutations
	// The API server defaults the object again after mutating admission.
	Default(mutated)
	res.Admitted = mutated

	if !equality.Semantic.DeepEqual(defaulted, mutated) {
		if err := res.addPatches(defaulted, mutated); err != nil {
			return &Result{Namespace: written.Namespace, Name: written.Name, Verdict: Failed, Error: err.Error()}
		}
	}
	in := &rules.Input{Operation: op, Object: mutated, OldObject: live, Written: written, Policy: pol, Nodes: nodes, PriorityClasses: e.PriorityClasses, Namespaces: e.Namespaces, Workloads: e.Workloads}
	findings, validateErrs := e.Rules.Validate(in)
	for _, f := range findings {
		res.Findings = append(res.Findings, Finding{Rule: f.Rule, Action: f.Action, Field: f.Field.String(), Message: f.Message})
		if f.Action == policy.Deny {
			res.Verdict = Denied
		}
	}
	// A mutation rule that fails does so again when the validating webhook
	// checks that the mutation happened: report it once.
	for _, e := range append(errs, validateErrs...) {
		if re := (RuleError{Rule: e.Rule, Message: e.Err.Error()}); !slices.Contains(res.RuleErrors, re) {
			res.RuleErrors = append(res.RuleErrors, re)
		}
	}
	if nodes != nil && nodes.Synced() {
		// Computed once for the rules already; a placement too expensive
		// to check is among the rule errors.
		if cov, err := in.Coverage(); err == nil {
			res.Coverage = &cov
		}
	}
	return res
}

// addPatches records the mutation as a JSON patch and as a merge patch. The
// JSON patch diffs whole objects, which is not on any hot path here; the
// webhook diffs only rules.MutableFields, and
// TestMutableFieldsPatchEqualsTheWholeObjectPatch holds the two equal.
func (res *Result) addPatches(defaulted, mutated *appsv1.DaemonSet) error {
	before, err := json.Marshal(defaulted)
	if err != nil {
		return err
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return err
	}
	resp := admission.PatchResponseFromRaw(before, after)
	if resp.Result != nil && resp.Result.Code >= 400 {
		return fmt.Errorf("computing the patch: %s", resp.Result.Message)
	}
	for _, op := range resp.Patches {
		res.Patch = append(res.Patch, PatchOperation{Op: op.Operation, Path: op.Path, Value: op.Value})
	}
	// The patch library emits operations in map order; reports must be stable.
	slices.SortFunc(res.Patch, func(a, b PatchOperation) int { return strings.Compare(a.Path, b.Path) })
	if res.MergePatch, err = jsonpatch.CreateMergePatch(before, after); err != nil {
		return fmt.Errorf("computing the merge patch: %w", err)
	}
	return nil
}
