package webhook

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/baseline"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// addToleration is the naive mutator's change: one toleration.
func addToleration(ds *appsv1.DaemonSet) {
	ds.Spec.Template.Spec.Tolerations = append(ds.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
}

// BenchmarkHandlers measures a whole admission request (HTTP body to
// AdmissionReview answer, without TLS) for both webhooks on a realistic
// DaemonSet, with node inventories of growing size in 20 classes, beside two
// baselines measured in the same run: a validator that only decodes and
// allows, and a naive mutator. The mutating webhook gets the DaemonSet as
// written; the validating webhook and its baseline get it as mutated, which
// is what the API server sends them. `make bench` prints the ratios.
func BenchmarkHandlers(b *testing.B) {
	written := fixture.Realistic()
	p, err := policy.Load("policy/testdata/example.yaml", rules.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	mutated := written.DeepCopy()
	rules.Builtin().Mutate(&rules.Input{Operation: rules.Create, Object: mutated, Policy: p})
	toMutate, toValidate := reviewBody("CREATE", written, nil, ""), reviewBody("CREATE", mutated, nil, "")
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	allowed, denied := `"allowed":true`, `"allowed":false`
	b.Run("baseline=decode-only-validator", func(b *testing.B) {
		serve(b, baseline.Validator(scheme), toValidate, allowed)
	})
	b.Run("baseline=naive-mutator", func(b *testing.B) {
		serve(b, &admission.Webhook{Handler: baseline.Mutator(scheme, addToleration)}, toMutate, allowed)
	})
	for _, n := range []int{0, 100, 1000, 5000, 10000, 50000} {
		srv := newTestServer(b, fixture.Cluster(n, 20)...)
		// Building 50,000 nodes leaves garbage that the first requests
		// would pay to collect.
		goruntime.GC()
		verdict := allowed
		if n == 0 {
			verdict = denied // the policy denies a DaemonSet that would run nowhere
		}
		b.Run(fmt.Sprintf("validate/nodes=%d", n), func(b *testing.B) { serve(b, srv.validate, toValidate, verdict) })
		b.Run(fmt.Sprintf("mutate/nodes=%d", n), func(b *testing.B) { serve(b, srv.mutate, toMutate, allowed) })
	}
}

// serve sends body to h for each iteration and checks that every answer
// holds verdict.
func serve(b *testing.B, h http.Handler, body, verdict string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), verdict) {
			b.Fatalf("status %d: %.300s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkLargeAffinity measures the validating webhook on a request whose
// template has 10,000 required node affinity terms (about 1 MB of JSON), at
// 5,000 nodes, with the node rules on and off: the difference is what
// placement adds to such a request, which inventory.MaxWork bounds. Terms
// that list zones fall into a few classes and are evaluated; terms that list
// hostnames make a class of each node and are refused before the work starts.
func BenchmarkLargeAffinity(b *testing.B) {
	inv := inventory.New(fixture.Cluster(5000, 20)...)
	metrics, err := NewMetrics(prometheus.NewRegistry(), inv, rules.Builtin().Names())
	if err != nil {
		b.Fatal(err)
	}
	for _, listed := range []struct{ name, key, format string }{
		{"zones", "topology.kubernetes.io/zone", "zone-%d"},
		{"hostnames", corev1.LabelHostname, "node-%05d"},
	} {
		ds := mutated(b, fixture.DaemonSet("pinned", func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Affinity = fixture.RequiredTerms(10000, listed.key, func(i int) string { return fmt.Sprintf(listed.format, i) })
		}))
		body := reviewBody("CREATE", ds, nil, "")
		for _, nodeRules := range []string{"on", "off"} {
			p, err := policy.Load("policy/testdata/example.yaml", rules.Builtin())
			if err != nil {
				b.Fatal(err)
			}
			if nodeRules == "off" {
				p.Rules[rules.TargetsNodes].Action, p.Rules[rules.RolloutBudget].Action = policy.Off, policy.Off
			}
			_, validator := newHandlers(handler{rules: rules.Builtin(), policy: policy.NewStore(p), nodes: inv, metrics: metrics}, logr.Discard())
			h := routes(&Mutator{}, validator, DefaultRequestTimeout)[ValidatePath]
			b.Run(fmt.Sprintf("terms=10000/%s/node-rules=%s", listed.name, nodeRules), func(b *testing.B) { serve(b, h, body, `"allowed":true`) })
		}
	}
}
