package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// FuzzAdmissionReview sends raw bodies through both handlers with panic
// recovery off, so that any panic fails, and checks that every answer is an
// AdmissionReview over HTTP 200 and never a 5xx result: the validating
// webhook fails closed, so a 5xx of ours would refuse a user's write.
func FuzzAdmissionReview(f *testing.F) {
	fluentd := fixture.DaemonSet("fluentd")
	for _, seed := range []string{
		reviewBody("CREATE", fluentd, nil, ""),
		reviewBody("UPDATE", manyTolerations(3), fluentd, ""),
		reviewBody("UPDATE", fluentd, nil, ""),
		reviewBody("DELETE", nil, fluentd, ""),
		reviewBody("CREATE", `{"apiVersion":"apps/v1","kind":"DaemonSet","spec":{"selector":null}}`, nil, `,"dryRun":true`),
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	m, v, _ := testHandlers(f, inventory.New(cluster()...))
	handlers := []http.Handler{
		(&admission.Webhook{Handler: m}).WithRecoverPanic(false),
		(&admission.Webhook{Handler: v}).WithRecoverPanic(false),
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range handlers {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var review admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil || rec.Code != http.StatusOK {
				t.Fatalf("the answer is not an AdmissionReview over HTTP 200 (%d): %v: %s", rec.Code, err, rec.Body)
			}
			if r := review.Response.Result; r != nil && r.Code >= 500 {
				t.Fatalf("a %d answer: %s", r.Code, r.Message)
			}
		}
	})
}
