package webhook

import (
	"context"
	"encoding/json"
	"net/http"

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
	// not know from being patched away.
	before, err := json.Marshal(rules.MutableFields(in.Object))
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	mutated := rules.Mutate(in)
	m.record(req, nil, mutated, true)
	if len(mutated) == 0 {
		return admission.Allowed("")
	}
	after, err := json.Marshal(rules.MutableFields(in.Object))
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(before, after)
}
