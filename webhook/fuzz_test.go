package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// reviewSeeds are admission request bodies, well formed and not, that the
// fuzz targets start from.
func reviewSeeds() []string {
	fluentd := fixture.DaemonSet("fluentd")
	return []string{
		reviewBody("CREATE", fluentd, nil, ""),
		reviewBody("UPDATE", manyTolerations(3), fluentd, ""),
		reviewBody("UPDATE", fluentd, nil, ""),
		reviewBody("DELETE", nil, fluentd, ""),
		reviewBody("CREATE", `{"apiVersion":"apps/v1","kind":"DaemonSet","spec":{"selector":null}}`, nil, `,"dryRun":true`),
		reviewBody("CREATE", `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a"}]}}`, nil, ""),
		reviewBody("CREATE", `{"apiVersion":"apps/v1","kind":"DaemonSet","spec":{"minReadySeconds":"ten"}}`, nil, ""),
		reviewBody("CREATE", `{}`, nil, ""),
		strings.Replace(reviewBody("CREATE", fluentd, nil, ""), `"admission.k8s.io/v1"`, `"admission.k8s.io/v1beta1"`, 1),
		strings.Replace(reviewBody("CREATE", fluentd, nil, ""), `"request"`, `"Request"`, 1),
		"apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {uid: x, operation: CREATE}\n",
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		`{}`,
	}
}

// FuzzAdmissionReview sends raw bodies through both handlers, as served,
// with panic recovery off, so that any panic fails, and checks that every
// answer is an AdmissionReview over HTTP 200 and never a 5xx result: the
// validating webhook fails closed, so a 5xx of ours would refuse a user's
// write.
func FuzzAdmissionReview(f *testing.F) {
	for _, seed := range reviewSeeds() {
		f.Add([]byte(seed))
	}
	m, v, _ := testHandlers(f, inventory.New(cluster()...))
	handlers := []http.Handler{
		onePass{(&admission.Webhook{Handler: m}).WithRecoverPanic(false)},
		onePass{(&admission.Webhook{Handler: v}).WithRecoverPanic(false)},
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

// FuzzOnePassAnswersAsControllerRuntime holds the one-pass decoding to
// controller-runtime's: for any body, each webhook answers through onePass
// exactly as through admission.Webhook alone (status, and the review,
// patches compared as a set of operations), so that a single decode of
// every field the rules read changes no decision and malformed input gets
// the same clear errors.
func FuzzOnePassAnswersAsControllerRuntime(f *testing.F) {
	for _, seed := range reviewSeeds() {
		f.Add([]byte(seed), "application/json")
	}
	f.Add([]byte(reviewBody("CREATE", fixture.DaemonSet("fluentd"), nil, "")), "application/yaml")
	m, v, _ := testHandlers(f, inventory.New(cluster()...))
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		for _, h := range []admission.Handler{m, v} {
			answer := func(handler http.Handler) (int, any) {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header.Set("Content-Type", contentType)
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				return rec.Code, comparableReview(t, rec.Body.Bytes())
			}
			wantCode, want := answer(&admission.Webhook{Handler: h})
			gotCode, got := answer(onePass{&admission.Webhook{Handler: h}})
			if gotCode != wantCode {
				t.Fatalf("HTTP %d through onePass, %d through controller-runtime", gotCode, wantCode)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("onePass answers otherwise than controller-runtime (-controller-runtime +onePass):\n%s", diff)
			}
		}
	})
}

// comparableReview decodes an answer, with its JSON patch decoded and its
// operations sorted: the patch's order is the diff's, which follows map
// iteration.
func comparableReview(t *testing.T, body []byte) any {
	t.Helper()
	var review map[string]any
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatalf("the answer is not JSON: %v: %s", err, body)
	}
	resp, _ := review["response"].(map[string]any)
	if patch, ok := resp["patch"].(string); ok {
		raw, err := base64.StdEncoding.DecodeString(patch)
		if err != nil {
			t.Fatal(err)
		}
		var ops []map[string]any
		if err := json.Unmarshal(raw, &ops); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ops, func(a, b map[string]any) int {
			return strings.Compare(fmt.Sprint(a["path"], a["op"], a["value"]), fmt.Sprint(b["path"], b["op"], b["value"]))
		})
		resp["patch"] = ops
	}
	return review
}
