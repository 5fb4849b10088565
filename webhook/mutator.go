package webhook

import (
	"context"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Mutator is the mutating webhook: it applies the mutation rules and answers
// with the JSON patch from the object received to the object mutated.
type Mutator struct{ handler }

// Handle implements admission.Handler.
func (m *Mutator) Handle(_ context.Context, req admission.Request) admission.Response {
	in, err := m.input(req)
	if err != nil {
		return refuse(err)
	}
	// Only the fields the rules may change are diffed (rules.MutableFields;
	// TestMutableFieldsPatchEqualsTheWholeObjectPatch holds it to the whole
	// object diff). Diffing the decoded object, not the raw request, also
	// keeps a field that a newer API server sends and this build's types do
	// not know from being patched away. Mutate replaces those fields rather
	// than writing into them, so the projection taken now keeps what was
	// received, and is marshalled only when a rule changed something: most
	// UPDATEs carry the defaults injected at their CREATE.
	received := m.rules.MutableFields(in.Object)
	mutated, errs := m.rules.Mutate(in)
	m.ruleErrors(req, errs)
	findings := rules.MutationFindings(in, errs)
	resp := respond(in, findings)
	m.record("mutate", req, findings, mutated, resp.Allowed)
	if !resp.Allowed || len(mutated) == 0 {
		return resp
	}
	before, err := json.Marshal(received)
	if err != nil {
		return unmutated(err)
	}
	after, err := json.Marshal(m.rules.MutableFields(in.Object))
	if err != nil {
		return unmutated(err)
	}
	return admission.PatchResponseFromRaw(before, after).WithWarnings(resp.Warnings...)
}

// unmutated admits the object as it came: the mutating webhook fails open,
// and a patch it cannot compute is its own failure, not the user's.
func unmutated(err error) admission.Response {
	return admission.Allowed("").WithWarnings(fmt.Sprintf("daemonset-guard could not compute its mutation, so the DaemonSet was admitted without it: %v", err))
}
