package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// allowAll is the decode-only baseline: controller-runtime's typed validator
// that decodes the object and allows it.
type allowAll struct{}

func (allowAll) ValidateCreate(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateUpdate(context.Context, *appsv1.DaemonSet, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateDelete(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}

// naiveMutator is the mutation baseline: decode, add one toleration,
// marshal, PatchResponseFromRaw against the raw request.
func naiveMutator(scheme *runtime.Scheme) admission.HandlerFunc {
	decoder := admission.NewDecoder(scheme)
	return func(_ context.Context, req admission.Request) admission.Response {
		ds := &appsv1.DaemonSet{}
		if err := decoder.Decode(req, ds); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		ds.Spec.Template.Spec.Tolerations = append(ds.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		out, err := json.Marshal(ds)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	}
}

// BenchmarkHandlers measures a whole admission request (HTTP body to
// AdmissionReview answer, without TLS) for both webhooks on a realistic
// DaemonSet, with node inventories of growing size in 20 classes, beside two
// baselines measured in the same run: a validator that only decodes and
// allows, and a naive mutator. `make bench` prints the ratios.
func BenchmarkHandlers(b *testing.B) {
	create := reviewBody("CREATE", fixture.Realistic(), nil, "")
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	serve := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetBytes(int64(len(create)))
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(create))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"`) {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("baseline=decode-only-validator", func(b *testing.B) {
		serve(b, admission.WithValidator[*appsv1.DaemonSet](scheme, allowAll{}))
	})
	b.Run("baseline=naive-mutator", func(b *testing.B) {
		serve(b, &admission.Webhook{Handler: naiveMutator(scheme)})
	})
	for _, n := range []int{0, 100, 1000, 5000, 10000} {
		srv := newTestServer(b, fixture.Cluster(n, 20)...)
		b.Run(fmt.Sprintf("validate/nodes=%d", n), func(b *testing.B) { serve(b, srv.validate) })
		b.Run(fmt.Sprintf("mutate/nodes=%d", n), func(b *testing.B) { serve(b, srv.mutate) })
	}
}
