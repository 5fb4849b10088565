// Package baseline holds the webhooks daemonset-guard is measured against:
// what a DaemonSet webhook written the obvious way with controller-runtime
// does, and nothing more. The handler benchmarks run them beside
// daemonset-guard's handlers, and apilatency serves them through a real API
// server, so that each figure has a baseline measured in the same run.
package baseline

import (
	"context"
	"encoding/json"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// AllowAll is the decode-only validator: controller-runtime decodes the
// DaemonSet (admission.WithValidator), and it allows it.
type AllowAll struct{}

// ValidateCreate allows.
func (AllowAll) ValidateCreate(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate allows.
func (AllowAll) ValidateUpdate(context.Context, *appsv1.DaemonSet, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows.
func (AllowAll) ValidateDelete(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}

// Validator is AllowAll as controller-runtime serves it.
func Validator(scheme *runtime.Scheme) *admission.Webhook {
	return admission.WithValidator[*appsv1.DaemonSet](scheme, AllowAll{})
}

// Mutator is the naive mutator: it decodes the DaemonSet, changes it with
// mutate, marshals it whole and answers with PatchResponseFromRaw against
// the raw request.
func Mutator(scheme *runtime.Scheme, mutate func(*appsv1.DaemonSet)) admission.HandlerFunc {
	decoder := admission.NewDecoder(scheme)
	return func(_ context.Context, req admission.Request) admission.Response {
		ds := &appsv1.DaemonSet{}
		if err := decoder.Decode(req, ds); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		mutate(ds)
		out, err := json.Marshal(ds)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	}
}
