package webhook

import (
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DefaultRequestTimeout bounds reading one admission request and writing its
// answer. The API server gives up after the configuration's timeoutSeconds
// (5 s); a client slower than this is not the API server, or is already
// gone, and must not hold a connection and a goroutine.
const DefaultRequestTimeout = 10 * time.Second

// routes returns the two webhook paths with their handlers: controller-runtime's
// admission.Webhook (bounded bodies, panics turned into 500 answers with the
// request's uid), with the one-pass decoding of onePass in front, behind
// read and write deadlines, which controller-runtime's server does not set.
func routes(mutator *Mutator, validator *Validator, timeout time.Duration) map[string]http.Handler {
	return map[string]http.Handler{
		MutatePath:   withDeadlines(onePass{&admission.Webhook{Handler: mutator}}, timeout),
		ValidatePath: withDeadlines(onePass{&admission.Webhook{Handler: validator}}, timeout),
	}
}

// withDeadlines sets the connection's read and write deadlines for this
// request, so that a body sent byte by byte or an answer never read ends the
// request instead of holding it.
func withDeadlines(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(timeout)
		// Recorders in tests support neither; real connections support both.
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		h.ServeHTTP(w, r)
	})
}
