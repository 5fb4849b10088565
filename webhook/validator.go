package webhook

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Validator is the validating webhook: it denies with field errors when a
// denying rule fires and returns every other finding as a warning.
type Validator struct{ handler }

// Handle implements admission.Handler.
func (v *Validator) Handle(_ context.Context, req admission.Request) admission.Response {
	in, err := v.input(req)
	if err != nil {
		return refuse(err)
	}
	findings, errs := v.rules.Validate(in)
	v.ruleErrors(req, errs)
	resp := respond(in, findings)
	v.record("validate", req, findings, nil, resp.Allowed)
	return resp
}
