package webhook

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// BenchmarkHandlers measures a whole admission request (HTTP body to
// AdmissionReview answer, without TLS) for both webhooks, with node
// inventories of growing size in 20 classes.
func BenchmarkHandlers(b *testing.B) {
	create := reviewBody("CREATE", fixture.DaemonSet("fluentd"), nil, "")
	for _, n := range []int{0, 1000, 10000} {
		srv := newTestServer(b, fixture.Cluster(n, 20)...)
		for name, h := range map[string]http.Handler{"validate": srv.validate, "mutate": srv.mutate} {
			b.Run(fmt.Sprintf("%s/nodes=%d", name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(create))
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		}
	}
}
