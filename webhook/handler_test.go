package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	schedulingv1helpers "k8s.io/kubernetes/pkg/apis/scheduling/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/namespaces"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// testServer serves both webhooks over httptest, as the manager would.
type testServer struct {
	mutate, validate http.Handler
	metrics          *Metrics
}

func newTestServer(t testing.TB, nodes ...*corev1.Node) *testServer {
	t.Helper()
	inv := inventory.New(nodes...)
	m, v, metrics := testHandlers(t, inv)
	r := routes(m, v, DefaultRequestTimeout)
	return &testServer{mutate: r[MutatePath], validate: r[ValidatePath], metrics: metrics}
}

// testHandlers builds both handlers as Setup does, with the README's policy
// (control-plane toleration, 10% maxUnavailable, minReadySeconds 10,
// targets-nodes denies) and the given node view.
func testHandlers(t testing.TB, nodes rules.Nodes) (*Mutator, *Validator, *Metrics) {
	t.Helper()
	p, err := policy.Load("policy/testdata/example.yaml", rules.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := NewMetrics(prometheus.NewRegistry(), inventory.New(), rules.Builtin().Names())
	if err != nil {
		t.Fatal(err)
	}
	// The PriorityClasses and namespaces of a fresh cluster, as Setup's
	// informers hold them.
	var system []schedulingv1.PriorityClass
	for _, pc := range schedulingv1helpers.SystemPriorityClasses() {
		system = append(system, *pc)
	}
	m, v := newHandlers(handler{rules: rules.Builtin(), policy: policy.NewStore(p), nodes: nodes, metrics: metrics,
		classes: priorityclass.New(system...), namespaces: namespaces.New()}, logr.Discard())
	return m, v, metrics
}

// review sends a raw body and decodes the AdmissionReview that comes back.
func review(t *testing.T, h http.Handler, body, contentType string) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := send(h, body, contentType)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// send is review for goroutines, which must not stop the test themselves.
func send(h http.Handler, body, contentType string) (*admissionv1.AdmissionResponse, error) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		return nil, fmt.Errorf("the answer is not an AdmissionReview (%v): %s", err, rec.Body)
	}
	return out.Response, nil
}

// reviewBody writes an AdmissionReview for apps/v1 daemonsets by hand, so
// that tests control every byte the handler sees.
func reviewBody(op string, object, oldObject any, extra string) string {
	raw := func(v any) string {
		if v == nil {
			return "null"
		}
		if s, ok := v.(string); ok {
			return s
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
		"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
		"kind":{"group":"apps","version":"v1","kind":"DaemonSet"},
		"resource":{"group":"apps","version":"v1","resource":"daemonsets"},
		"requestKind":{"group":"apps","version":"v1","kind":"DaemonSet"},
		"requestResource":{"group":"apps","version":"v1","resource":"daemonsets"},
		"name":"fluentd","namespace":"logging","operation":%q,
		"userInfo":{"username":"admin"},
		"object":%s,"oldObject":%s%s}}`, op, raw(object), raw(oldObject), extra)
}

func cluster() []*corev1.Node {
	return []*corev1.Node{
		fixture.Node("cp-1", nil, fixture.ControlPlaneTaint),
		fixture.Node("ssd-1", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}),
	}
}

func TestMutatingHandler(t *testing.T) {
	fluentd := fixture.DaemonSet("fluentd")
	newImage := fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "fluentd:v2" })
	relabelled := fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} })
	const created = `[` +
		`{"op":"add","path":"/metadata/annotations","value":{"daemonset-guard.io/mutated":"default-tolerations,rolling-update-defaults"}},` +
		`{"op":"add","path":"/spec/minReadySeconds","value":10},` +
		`{"op":"add","path":"/spec/template/spec/tolerations","value":[{"effect":"NoSchedule","key":"node-role.kubernetes.io/control-plane","operator":"Exists"}]},` +
		`{"op":"replace","path":"/spec/updateStrategy/rollingUpdate/maxUnavailable","value":"10%"}]`
	tests := []struct {
		name        string
		body        string
		contentType string
		allowed     bool
		code        int32
		patch       string // JSON patch, operations sorted by path
		message     string
	}{
		{name: "patches a new DaemonSet with the tolerations, the rollout defaults and the record of both",
			body: reviewBody("CREATE", fluentd, nil, ""), allowed: true, patch: created},
		{name: "gives a dry run the same answer as a real request",
			body: reviewBody("CREATE", fluentd, nil, `,"dryRun":true`), allowed: true, patch: created},
		{name: "never patches the template on an update that leaves the template alone",
			body: reviewBody("UPDATE", relabelled, fluentd, ""), allowed: true,
			patch: `[` +
				`{"op":"add","path":"/metadata/annotations","value":{"daemonset-guard.io/mutated":"rolling-update-defaults"}},` +
				`{"op":"add","path":"/spec/minReadySeconds","value":10},` +
				`{"op":"replace","path":"/spec/updateStrategy/rollingUpdate/maxUnavailable","value":"10%"}]`},
		{name: "adds the tolerations on an update that changes the template",
			body: reviewBody("UPDATE", newImage, fluentd, ""), allowed: true,
			patch: created},
		{name: "answers nothing to patch when the object already has everything",
			body: reviewBody("CREATE", mutatedFluentd(), nil, ""), allowed: true},
		{name: "allows a DELETE, which it does not judge",
			body: reviewBody("DELETE", nil, fluentd, ""), allowed: true},
		{name: "refuses malformed JSON with 400",
			body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`, code: http.StatusBadRequest, message: "unexpected end of JSON input"},
		{name: "refuses a content type other than JSON with 400",
			body: reviewBody("CREATE", fluentd, nil, ""), contentType: "application/yaml", code: http.StatusBadRequest, message: "contentType=application/yaml, expected application/json"},
		{name: "refuses a request for another resource with 400",
			body: strings.Replace(reviewBody("CREATE", fluentd, nil, ""), `"resource":"daemonsets"}`, `"resource":"deployments"}`, 1), code: http.StatusBadRequest,
			message: "daemonset-guard judges apps/v1 daemonsets, not apps/v1 DaemonSet apps/v1 deployments"},
		{name: "refuses an object of the wrong kind with 400",
			body: reviewBody("CREATE", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`, nil, ""), code: http.StatusBadRequest,
			message: `object has apiVersion "apps/v1" and kind "Deployment", not apps/v1 DaemonSet`},
		{name: "refuses a DaemonSet of an older API version with 400",
			body: reviewBody("CREATE", `{"apiVersion":"apps/v1beta2","kind":"DaemonSet","metadata":{"name":"fluentd"}}`, nil, ""), code: http.StatusBadRequest,
			message: `object has apiVersion "apps/v1beta2" and kind "DaemonSet", not apps/v1 DaemonSet`},
		{name: "refuses an object without apiVersion and kind with 400",
			body: reviewBody("CREATE", `{"metadata":{"name":"fluentd"}}`, nil, ""), code: http.StatusBadRequest,
			message: `object has apiVersion "" and kind "", not apps/v1 DaemonSet`},
		{name: "refuses an UPDATE without oldObject with 400",
			body: reviewBody("UPDATE", fluentd, nil, ""), code: http.StatusBadRequest, message: "the admission request has no oldObject"},
		{name: "refuses a request without uid with 400",
			body: strings.Replace(reviewBody("CREATE", fluentd, nil, ""), `"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",`, "", 1), code: http.StatusBadRequest, message: "no uid"},
		{name: "refuses an object that is not a JSON object with 400",
			body: reviewBody("CREATE", `"fluentd"`, nil, ""), code: http.StatusBadRequest, message: "decoding object"},
	}
	srv := newTestServer(t, cluster()...)
	patched := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.contentType == "" {
				tt.contentType = "application/json"
			}
			resp := review(t, srv.mutate, tt.body, tt.contentType)
			assertResponse(t, resp, tt.allowed, tt.code, tt.message)
			if got := sortedPatch(t, resp.Patch); got != tt.patch {
				t.Errorf("patch:\n got  %s\n want %s", got, tt.patch)
			}
			if resp.Patch != nil {
				patched++
			}
		})
	}
	// A decision is one answer: a patch counts once, however many rules made it.
	got := testutil.ToFloat64(srv.metrics.decisions.WithLabelValues("mutate", "CREATE", "patched")) +
		testutil.ToFloat64(srv.metrics.decisions.WithLabelValues("mutate", "UPDATE", "patched"))
	if patched == 0 || got != float64(patched) {
		t.Errorf("daemonset_guard_decisions_total{webhook=mutate,decision=patched} = %v, want the %d patches answered", got, patched)
	}
}

// mutatedFluentd is the fluentd DaemonSet as the mutating webhook leaves it.
func mutatedFluentd() *appsv1.DaemonSet {
	return fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
		ds.Annotations = map[string]string{"daemonset-guard.io/mutated": "default-tolerations,rolling-update-defaults"}
		ds.Spec.MinReadySeconds = 10
		tenPercent := intstr.FromString("10%")
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &tenPercent
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	})
}

// mutated returns ds as the mutating webhook leaves it under the README's
// policy: what the API server sends the validating webhook.
func mutated(t testing.TB, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	t.Helper()
	p, err := policy.Load("policy/testdata/example.yaml", rules.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	out := ds.DeepCopy()
	rules.Builtin().Mutate(&rules.Input{Operation: rules.Create, Object: out, Policy: p})
	return out
}

func TestValidatingHandler(t *testing.T) {
	// The validating webhook receives what the mutating webhook made.
	fluentd := mutated(t, fixture.DaemonSet("fluentd"))
	nvme := mutated(t, fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"} }))
	reselected := mutated(t, fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
		ds.Spec.Selector.MatchLabels["tier"] = "logging"
		ds.Spec.Template.Labels["tier"] = "logging"
	}))
	ssdOnly := mutated(t, fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "ssd"} }))
	tests := []struct {
		name     string
		body     string
		allowed  bool
		code     int32
		message  string
		warnings []string
	}{
		{name: "allows a DaemonSet that runs on nodes", body: reviewBody("CREATE", fluentd, nil, ""), allowed: true},
		{name: "denies with 422 and the field path a DaemonSet that targets no node, as the policy says",
			body: reviewBody("CREATE", nvme, nil, ""), code: http.StatusUnprocessableEntity,
			message: `DaemonSet.apps "fluentd" is invalid: spec.template.spec: Forbidden: [targets-nodes] the DaemonSet would run on no node: 0 of 3 nodes: 3 lack label disktype=nvme`},
		{name: "names a DaemonSet created with generateName by its prefix",
			body: reviewBody("CREATE", fixture.DaemonSet("", func(ds *appsv1.DaemonSet) {
				ds.GenerateName = "fluentd-"
				ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": "nvme"}
			}), nil, ""), code: http.StatusUnprocessableEntity, message: `DaemonSet.apps "fluentd-" is invalid`},
		{name: "gives a dry run the same denial",
			body: reviewBody("CREATE", nvme, nil, `,"dryRun":true`), code: http.StatusUnprocessableEntity, message: "[targets-nodes]"},
		{name: "denies a selector change with the way to replace the DaemonSet",
			body: reviewBody("UPDATE", reselected, fluentd, ""), code: http.StatusUnprocessableEntity,
			message: "spec.selector: Forbidden: [selector-immutable] the selector of a DaemonSet cannot change after creation"},
		{name: "warns on update about the nodes that would lose their pod",
			body: reviewBody("UPDATE", ssdOnly, fluentd, ""), allowed: true,
			warnings: []string{"[targets-nodes] spec.template.spec: 2 nodes would lose their daemon pod: cp-1, hdd-1; the update changes the pod template, so it rolls every daemon pod"}},
		{name: "refuses an UPDATE without oldObject with 400",
			body: reviewBody("UPDATE", fluentd, nil, ""), code: http.StatusBadRequest, message: "no oldObject"},
		{name: "denies what the mutating webhook should have changed, as when it failed open",
			body: reviewBody("CREATE", fixture.DaemonSet("fluentd"), nil, ""), code: http.StatusUnprocessableEntity,
			message: "spec: Forbidden: [default-tolerations] the mutating webhook has not applied this rule, which it fails open on when it cannot be reached; retry the request"},
		{name: "allows a CONNECT, which it does not judge",
			body: reviewBody("CONNECT", nil, nil, ""), allowed: true},
		{name: "refuses an unknown operation with 400",
			body: reviewBody("PATCH", fluentd, nil, ""), code: http.StatusBadRequest, message: `unknown operation "PATCH"`},
	}
	srv := newTestServer(t, cluster()...)
	denied := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := review(t, srv.validate, tt.body, "application/json")
			assertResponse(t, resp, tt.allowed, tt.code, tt.message)
			if !resp.Allowed && resp.Result.Code != http.StatusBadRequest {
				denied++
			}
			if !slices.Equal(resp.Warnings, tt.warnings) {
				t.Errorf("warnings = %q, want %q", resp.Warnings, tt.warnings)
			}
			if resp.Patch != nil {
				t.Errorf("the validating webhook answered with a patch: %s", resp.Patch)
			}
		})
	}
	if got := testutil.ToFloat64(srv.metrics.findings.WithLabelValues("targets-nodes", "deny", "CREATE")); got != 3 {
		t.Errorf("daemonset_guard_findings_total{rule=targets-nodes,action=deny,operation=CREATE} = %v, want 3", got)
	}
	// A decision is one answer, however many findings it carries.
	got := testutil.ToFloat64(srv.metrics.decisions.WithLabelValues("validate", "CREATE", "denied")) +
		testutil.ToFloat64(srv.metrics.decisions.WithLabelValues("validate", "UPDATE", "denied"))
	if denied == 0 || got != float64(denied) {
		t.Errorf("daemonset_guard_decisions_total{webhook=validate,decision=denied} = %v, want the %d denials answered", got, denied)
	}
}

func assertResponse(t *testing.T, resp *admissionv1.AdmissionResponse, allowed bool, code int32, message string) {
	t.Helper()
	if resp.UID == "" && code != http.StatusBadRequest {
		t.Error("the response carries no uid")
	}
	if resp.Allowed != allowed {
		t.Errorf("allowed = %v, want %v (result %+v)", resp.Allowed, allowed, resp.Result)
	}
	if allowed {
		return
	}
	if resp.Result == nil || resp.Result.Code != code || !strings.Contains(resp.Result.Message, message) {
		t.Errorf("result = %+v, want code %d and a message containing %q", resp.Result, code, message)
	}
}

// sortedPatch returns the patch with its operations sorted by path, so that
// tests do not depend on the order the patch library emits.
func sortedPatch(t *testing.T, patch []byte) string {
	t.Helper()
	if patch == nil {
		return ""
	}
	var ops []map[string]any
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("the patch is not a JSON patch: %v", err)
	}
	slices.SortFunc(ops, func(a, b map[string]any) int { return strings.Compare(a["path"].(string), b["path"].(string)) })
	out, _ := json.Marshal(ops)
	return string(out)
}
