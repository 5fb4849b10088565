package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// maxReviewSize is controller-runtime's limit on an admission request body
// (admission.Webhook's maxRequestSize): two objects of at most 3 MB and the
// rest.
const maxReviewSize = 7 * 1024 * 1024

// admissionReviewV1 is the only AdmissionReview version the webhook
// configurations ask for.
var admissionReviewV1 = metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}

// onePassReview is an AdmissionReview decoded in one pass, straight into the
// DaemonSets the rules judge.
type onePassReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *onePassRequest `json:"request"`
}

// onePassRequest is an admission request whose objects decode as
// DaemonSets; the two fields hide the embedded request's raw ones.
type onePassRequest struct {
	admissionv1.AdmissionRequest
	Object    *appsv1.DaemonSet `json:"object"`
	OldObject *appsv1.DaemonSet `json:"oldObject"`
}

// onePass serves an admission webhook, decoding the body once. A review
// controller-runtime would decode through its universal deserializer (one
// pass to find the kind, another into the AdmissionReview, then the webhook's
// own into the DaemonSets) is decoded here by the same JSON decoder, with the
// same options, in a single pass into the DaemonSets, which reach the
// handler already decoded (runtime.RawExtension's Object); the rest is
// controller-runtime's: its Handle (panic recovery, Complete) and its way of
// writing the answer. Everything else (no body, another content type, a
// body over the limit, anything but an admission.k8s.io/v1 AdmissionReview
// whose objects decode as DaemonSets) goes to controller-runtime's
// admission.Webhook whole, so malformed input gets its answers, word for
// word. FuzzOnePassAnswersAsControllerRuntime holds the two to the same
// answer for any body.
type onePass struct {
	webhook *admission.Webhook
}

func (p onePass) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Content-Type") != "application/json" {
		p.webhook.ServeHTTP(w, r)
		return
	}
	body, err := readBody(r)
	if err != nil || len(body) == maxReviewSize {
		// What was read goes back in front of the rest, for the webhook
		// to read and answer as it would have.
		p.fallBack(w, r, io.MultiReader(bytes.NewReader(body), r.Body))
		return
	}
	var review onePassReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil || review.TypeMeta != admissionReviewV1 || review.Request == nil {
		p.fallBack(w, r, bytes.NewReader(body))
		return
	}
	req := admission.Request{AdmissionRequest: review.Request.AdmissionRequest}
	req.Object, req.OldObject = decoded(review.Request.Object), decoded(review.Request.OldObject)
	resp := p.webhook.Handle(r.Context(), req)
	// As controller-runtime writes it; encoding a response cannot fail, so
	// an error is a broken connection, which can be told nothing.
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: admissionReviewV1, Response: &resp.AdmissionResponse})
}

// readBody reads at most maxReviewSize bytes of the body, into a buffer of
// the size the API server declares, not one grown by doubling.
func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n < maxReviewSize {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxReviewSize))
	return buf.Bytes(), err
}

// fallBack has controller-runtime answer the request with body. It serves a
// copy of the request: the server tells from the request's own Body whether
// the handler left part of it unread, and then closes the connection rather
// than read the rest as the next request.
func (p onePass) fallBack(w http.ResponseWriter, r *http.Request, body io.Reader) {
	again := *r
	again.Body = io.NopCloser(body)
	p.webhook.ServeHTTP(w, &again)
}

// decoded carries a decoded DaemonSet to the handler; none stays empty, as
// a missing or null object decodes.
func decoded(ds *appsv1.DaemonSet) runtime.RawExtension {
	if ds == nil {
		return runtime.RawExtension{}
	}
	return runtime.RawExtension{Object: ds}
}
