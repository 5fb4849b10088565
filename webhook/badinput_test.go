package webhook

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// tlsServer serves both webhooks over real TLS connections, with the wiring
// of Setup, so that deadlines and body limits act as in production.
func tlsServer(t *testing.T, nodes rules.Nodes, timeout time.Duration) (*httptest.Server, *http.Client) {
	t.Helper()
	m, v, _ := testHandlers(t, nodes)
	srv := httptest.NewUnstartedServer(routesMux(m, v, timeout))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 30 * time.Second
	return srv, client
}

// routesMux serves routes on one handler.
func routesMux(m *Mutator, v *Validator, timeout ...time.Duration) *http.ServeMux {
	mux := http.NewServeMux()
	for path, h := range routes(m, v, append(timeout, DefaultRequestTimeout)[0]) {
		mux.Handle(path, h)
	}
	return mux
}

// answer is what the webhook said, or the HTTP status when it did not answer
// with an AdmissionReview.
type answer struct {
	status     int
	apiVersion string
	uid        string
	allowed    bool
	code       int32
	message    string
	warnings   []string
	patch      []map[string]any
}

func post(t *testing.T, client *http.Client, url, contentType string, body []byte) answer {
	t.Helper()
	resp, err := client.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	var review struct {
		APIVersion string                         `json:"apiVersion"`
		Response   *admissionv1.AdmissionResponse `json:"response"`
	}
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		t.Fatalf("not an AdmissionReview (HTTP %d): %s", resp.StatusCode, data)
	}
	a.apiVersion, a.uid, a.allowed, a.warnings = review.APIVersion, string(review.Response.UID), review.Response.Allowed, review.Response.Warnings
	if r := review.Response.Result; r != nil {
		a.code, a.message = r.Code, r.Message
	}
	if review.Response.Patch != nil {
		if err := json.Unmarshal(review.Response.Patch, &a.patch); err != nil {
			t.Fatalf("the patch is not JSON: %v", err)
		}
	}
	return a
}

func manyTolerations(n int) *appsv1.DaemonSet {
	return fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
		for i := range n {
			ds.Spec.Template.Spec.Tolerations = append(ds.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: fmt.Sprintf("k%d", i), Operator: corev1.TolerationOpExists})
		}
	})
}

func manyLabels(n int) *appsv1.DaemonSet {
	return fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
		ds.Labels = map[string]string{}
		for i := range n {
			ds.Labels[fmt.Sprintf("label-%d", i)] = "v"
		}
	})
}

// TestBadInput documents, case by case, how the webhooks answer input that
// the API server should never send, over real TLS connections. Every answer
// is an AdmissionReview (HTTP 200, the result code saying what went wrong),
// and the server keeps serving: each case ends with a good request.
func TestBadInput(t *testing.T) {
	fluentd := mutated(t, fixture.DaemonSet("fluentd"))
	create := reviewBody("CREATE", fluentd, nil, "")
	nested := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	tests := []struct {
		name        string
		path        string // default: validate
		contentType string // default: application/json
		body        string
		allowed     bool
		code        int32  // result code when not allowed
		message     string // substring of the result message
		apiVersion  string // of the answer; default admission.k8s.io/v1
		patchPath   string // an operation the patch must hold
	}{
		{name: "malformed JSON is refused with 400", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`, code: 400, message: "unexpected end of JSON input"},
		{name: "an empty body is refused with 400", body: "", code: 400, message: "request body is empty"},
		{name: "a content type other than JSON is refused with 400", contentType: "text/plain", body: create, code: 400, message: "contentType=text/plain, expected application/json"},
		{name: "a body over 7 MiB is refused with 413", body: `{"padding":"` + strings.Repeat("x", 8<<20) + `"}`, code: 413, message: "request entity is too large"},
		// controller-runtime decodes any body into an AdmissionReview and
		// echoes the kind it was sent; only an API server that is not one
		// would send this, and it changes nothing.
		{name: "a review of another kind is judged as an AdmissionReview", body: strings.Replace(create, `"kind":"AdmissionReview"`, `"kind":"TokenReview"`, 1), allowed: true},
		{name: "an admission.k8s.io/v1beta1 review is answered in v1beta1", body: strings.Replace(create, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1), allowed: true, apiVersion: "admission.k8s.io/v1beta1"},
		{name: "a request for another resource is refused with 400", body: strings.Replace(create, `"resource":"daemonsets"}`, `"resource":"deployments"}`, 1), code: 400, message: "not apps/v1 DaemonSet apps/v1 deployments"},
		{name: "a request without uid is refused with 400", body: strings.Replace(create, `"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",`, "", 1), code: 400, message: "no uid"},
		{name: "an UPDATE without oldObject is refused with 400", body: reviewBody("UPDATE", fluentd, nil, ""), code: 400, message: "no oldObject"},
		{name: "a DELETE is allowed unjudged", body: reviewBody("DELETE", nil, fluentd, ""), allowed: true},
		{name: "a CONNECT is allowed unjudged", body: reviewBody("CONNECT", nil, nil, ""), allowed: true},
		{name: "a dry run is judged like a real request", body: reviewBody("CREATE", fluentd, nil, `,"dryRun":true`), allowed: true},
		{name: "invalid UTF-8 in a name is judged like any name", body: strings.Replace(create, `"name":"fluentd","namespace":"logging"}`, "\"name\":\"fluentd\xff\",\"namespace\":\"logging\"}", 1), allowed: true},
		{name: "unknown fields are ignored", body: strings.Replace(create, `"spec":{`, `"spec":{"futureField":{"a":1},`, 1), allowed: true},
		{name: "deeply nested JSON is refused with 400", body: strings.Replace(create, `"spec":{`, `"spec":{"nested":`+nested+`,`, 1), code: 400, message: "exceeded max depth"},
		{name: "10,000 tolerations are judged", body: reviewBody("CREATE", mutated(t, manyTolerations(10000)), nil, ""), allowed: true},
		{name: "10,000 tolerations are mutated by appending, not by replacing the user's", path: MutatePath, body: reviewBody("CREATE", manyTolerations(10000), nil, ""), allowed: true,
			patchPath: "add /spec/template/spec/tolerations/10000"},
		{name: "10,000 labels are judged", body: reviewBody("CREATE", mutated(t, manyLabels(10000)), nil, ""), allowed: true},
	}
	srv, client := tlsServer(t, inventory.New(cluster()...), DefaultRequestTimeout)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			path, contentType, apiVersion := ValidatePath, "application/json", "admission.k8s.io/v1"
			if tt.path != "" {
				path = tt.path
			}
			if tt.contentType != "" {
				contentType = tt.contentType
			}
			if tt.apiVersion != "" {
				apiVersion = tt.apiVersion
			}
			a := post(t, client, srv.URL+path, contentType, []byte(tt.body))
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.allowed).To(Equal(tt.allowed), "allowed (result %d %s)", a.code, a.message)
			if !tt.allowed {
				g.Expect(a.code).To(Equal(tt.code))
				g.Expect(a.message).To(ContainSubstring(tt.message))
			} else {
				g.Expect(a.apiVersion).To(Equal(apiVersion))
			}
			if tt.patchPath != "" {
				var ops []string
				for _, op := range a.patch {
					ops = append(ops, fmt.Sprintf("%s %s", op["op"], op["path"]))
				}
				g.Expect(ops).To(ContainElement(tt.patchPath))
				g.Expect(ops).NotTo(ContainElement("replace /spec/template/spec/tolerations"))
			}
			good := post(t, client, srv.URL+ValidatePath, "application/json", []byte(create))
			g.Expect(good.allowed).To(BeTrue(), "the server still serves")
		})
	}
}

// panicking is a node view that panics, standing for a bug in a rule.
type panicking struct{}

func (panicking) Synced() bool { return true }
func (panicking) Coverage(*corev1.PodSpec) (inventory.Coverage, error) {
	panic("a bug")
}
func (panicking) Moved(*corev1.PodSpec, *corev1.PodSpec) ([]string, []string, error) {
	panic("a bug")
}
func (panicking) NotReady(*corev1.PodSpec) (int, error)                 { panic("a bug") }
func (panicking) Mixed(*corev1.PodSpec, string) (map[string]int, error) { panic("a bug") }

// TestARuleThatPanicsIsAnsweredAsItsOnErrorSays sends, over real TLS, a
// DaemonSet whose placement rules panic, under the README's policy where
// targets-nodes denies: no answer is a 5xx, each panic is logged with the
// request's uid and counted, and each rule answers as its onError says.
func TestARuleThatPanicsIsAnsweredAsItsOnErrorSays(t *testing.T) {
	for _, tt := range []struct {
		name    string
		onError policy.OnError
		allowed bool
	}{
		{"admits with a warning naming the rule when onError is allow", policy.OnErrorAllow, true},
		{"denies naming the rule when onError is deny", policy.OnErrorDeny, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var logs []string
			log := funcr.New(func(prefix, args string) { logs = append(logs, prefix+" "+args) }, funcr.Options{})
			p, err := policy.Load("policy/testdata/example.yaml", rules.Builtin())
			g.Expect(err).NotTo(HaveOccurred())
			p.Rules[rules.TargetsNodes].OnError = tt.onError
			reg := prometheus.NewRegistry()
			metrics, err := NewMetrics(reg, inventory.New(), rules.Builtin().Names())
			g.Expect(err).NotTo(HaveOccurred())
			mutator, validator := newHandlers(handler{rules: rules.Builtin(), policy: policy.NewStore(p), nodes: panicking{}, metrics: metrics}, log)
			srv := httptest.NewUnstartedServer(routesMux(mutator, validator))
			srv.StartTLS()
			t.Cleanup(srv.Close)

			a := post(t, srv.Client(), srv.URL+ValidatePath, "application/json", []byte(reviewBody("CREATE", mutated(t, fixture.DaemonSet("fluentd")), nil, "")))
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.code).To(BeNumerically("<", 500), "no answer is a 5xx")
			g.Expect(a.allowed).To(Equal(tt.allowed))
			if tt.allowed {
				g.Expect(a.warnings).To(ContainElement(ContainSubstring("[targets-nodes] spec: the rule could not be evaluated, so it was not applied (its onError is allow): panic: a bug")))
			} else {
				g.Expect(a.code).To(BeEquivalentTo(http.StatusUnprocessableEntity))
				g.Expect(a.message).To(ContainSubstring("[targets-nodes] the rule could not be evaluated, and its onError is deny: panic: a bug"))
			}
			g.Expect(a.warnings).To(ContainElement(ContainSubstring("[rollout-budget] spec: the rule could not be evaluated")), "rollout-budget keeps its own onError, allow")
			g.Expect(testutil.ToFloat64(metrics.ruleErrors.WithLabelValues(rules.TargetsNodes))).To(BeEquivalentTo(1))
			g.Expect(testutil.ToFloat64(metrics.ruleErrors.WithLabelValues(rules.RolloutBudget))).To(BeEquivalentTo(1))
			g.Expect(testutil.ToFloat64(metrics.ruleErrors.WithLabelValues(rules.SelectorMatchesTemplate))).To(BeZero())
			g.Expect(logs).To(ContainElement(And(ContainSubstring("rule could not be evaluated"), ContainSubstring(`"rule"="targets-nodes"`),
				ContainSubstring("705ab4f5-6393-11e8-b7cc-42010a800002"), ContainSubstring("stack"))))
		})
	}
}

func TestASlowClientIsCutOffAtTheDeadline(t *testing.T) {
	g := NewWithT(t)
	const timeout = 500 * time.Millisecond
	srv, client := tlsServer(t, inventory.New(cluster()...), timeout)
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	body := reviewBody("CREATE", mutated(t, fixture.DaemonSet("fluentd")), nil, "")
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", ValidatePath, len(body))
	g.Expect(err).NotTo(HaveOccurred())
	start := time.Now()
	// One byte every 100 ms: the whole body would take minutes.
	for i := 0; i < len(body); i++ {
		if _, err := conn.Write([]byte{body[i]}); err != nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the server kept reading a body sent byte by byte for 5 s")
		}
		time.Sleep(100 * time.Millisecond)
		_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if n, _ := conn.Read(make([]byte, 1)); n > 0 {
			break // the server answered (and closes) before the body was complete
		}
	}
	g.Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second), "cut off near the %v deadline", timeout)
	good := post(t, client, srv.URL+ValidatePath, "application/json", []byte(body))
	g.Expect(good.allowed).To(BeTrue(), "the server still serves")
}

func TestAThousandConcurrentConnectionsAreAllAnswered(t *testing.T) {
	g := NewWithT(t)
	srv, client := tlsServer(t, inventory.New(fixture.Cluster(1000, 20)...), DefaultRequestTimeout)
	// A connection each, as 1,000 API server clients at once would open.
	client.Transport.(*http.Transport).MaxConnsPerHost = 0
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 1000
	body := []byte(reviewBody("CREATE", mutated(t, fixture.DaemonSet("fluentd")), nil, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Go(func() {
			resp, err := client.Post(srv.URL+ValidatePath, "application/json", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || review.Response == nil || !review.Response.Allowed {
				errs <- fmt.Errorf("bad answer: %v %+v", err, review.Response)
			}
		})
	}
	wg.Wait()
	close(errs)
	var failures []error
	for err := range errs {
		failures = append(failures, err)
	}
	g.Expect(failures).To(BeEmpty())
}
