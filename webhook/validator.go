package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
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
	findings := rules.Validate(in)
	var denied field.ErrorList
	var warnings []string
	for _, f := range findings {
		if f.Action == policy.Deny {
			denied = append(denied, f.FieldError())
		} else {
			warnings = append(warnings, f.String())
		}
	}
	v.record(req, findings, nil, len(denied) == 0)
	if len(denied) > 0 {
		name := in.Object.Name
		if name == "" {
			name = in.Object.GenerateName // the API server names the object after admission
		}
		status := apierrors.NewInvalid(daemonSetGroupKind, name, denied).Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}.WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}
