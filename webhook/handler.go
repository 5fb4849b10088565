package webhook

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Paths the two webhooks are served on.
const (
	MutatePath   = "/mutate-apps-v1-daemonset"
	ValidatePath = "/validate-apps-v1-daemonset"
)

var (
	daemonSetKind      = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	daemonSetResource  = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	daemonSetGroupKind = schema.GroupKind{Group: "apps", Kind: "DaemonSet"}
)

// handler holds what both webhooks share: the policy in force, the nodes,
// metrics and the logger.
type handler struct {
	rules   *rules.Catalog
	policy  *policy.Store
	nodes   rules.Nodes
	classes rules.PriorityClasses
	// namespaces may be nil (tests of the handlers): namespace-placement
	// then says it did not check them.
	namespaces rules.Namespaces
	metrics    *Metrics
	log        logr.Logger
}

// errNotJudged marks requests that carry nothing to judge (DELETE, CONNECT):
// they are allowed unchanged.
var errNotJudged = errors.New("operation not judged")

// input decodes and checks an admission request. Requests that the webhook
// configuration should never have sent get a 400 that says what was wrong.
func (h *handler) input(req admission.Request) (*rules.Input, error) {
	if req.UID == "" {
		return nil, errors.New("the admission request has no uid")
	}
	if req.Kind != daemonSetKind || req.Resource != daemonSetResource || req.SubResource != "" {
		return nil, fmt.Errorf("daemonset-guard judges apps/v1 daemonsets, not %s %s", kindString(req.Kind), resourceString(req.Resource, req.SubResource))
	}
	var op rules.Operation
	switch req.Operation {
	case admissionv1.Create:
		op = rules.Create
	case admissionv1.Update:
		op = rules.Update
	case admissionv1.Delete, admissionv1.Connect:
		return nil, errNotJudged
	default:
		return nil, fmt.Errorf("unknown operation %q", req.Operation)
	}
	in := &rules.Input{Operation: op, Policy: h.policy.Get(), Nodes: h.nodes, PriorityClasses: h.classes, Namespaces: h.namespaces}
	var err error
	if in.Object, err = h.decode(req.Object, "object"); err != nil {
		return nil, err
	}
	if op == rules.Update {
		if in.OldObject, err = h.decode(req.OldObject, "oldObject"); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// decode returns the DaemonSet of a request's object: decoded already by
// onePass, or decoded here from the raw bytes controller-runtime passes.
func (h *handler) decode(raw runtime.RawExtension, name string) (*appsv1.DaemonSet, error) {
	ds, decoded := raw.Object.(*appsv1.DaemonSet)
	if !decoded {
		if len(raw.Raw) == 0 {
			return nil, fmt.Errorf("the admission request has no %s", name)
		}
		ds = &appsv1.DaemonSet{}
		// What the API server's JSON serializer does, without the first pass
		// it makes over the whole body to find apiVersion and kind: this one
		// type is all the webhook decodes, and TypeMeta is checked below.
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw.Raw, ds); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != daemonSetKind.Kind {
		return nil, fmt.Errorf("%s has apiVersion %q and kind %q, not apps/v1 DaemonSet", name, ds.APIVersion, ds.Kind)
	}
	return ds, nil
}

// refuse answers a request that cannot be judged.
func refuse(err error) admission.Response {
	if errors.Is(err, errNotJudged) {
		return admission.Allowed("")
	}
	return admission.Errored(http.StatusBadRequest, err)
}

// respond denies with field errors when a finding denies, and returns every
// other finding as a warning.
func respond(in *rules.Input, findings []rules.Finding) admission.Response {
	var denied field.ErrorList
	var warnings []string
	for _, f := range findings {
		if f.Action == policy.Deny {
			denied = append(denied, f.FieldError())
		} else {
			warnings = append(warnings, f.String())
		}
	}
	if len(denied) == 0 {
		return admission.Allowed("").WithWarnings(warnings...)
	}
	name := in.Object.Name
	if name == "" {
		name = in.Object.GenerateName // the API server names the object after admission
	}
	status := apierrors.NewInvalid(daemonSetGroupKind, name, denied).Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}.WithWarnings(warnings...)
}

// ruleErrors logs and counts the rules that could not be evaluated; their
// answers are already among the findings.
func (h *handler) ruleErrors(req admission.Request, errs []rules.RuleError) {
	for _, e := range errs {
		h.metrics.ruleErrors.WithLabelValues(e.Rule).Inc()
		kv := []any{"uid", req.UID, "namespace", req.Namespace, "name", req.Name, "rule", e.Rule, "onError", h.policy.Get().OnError(e.Rule)}
		if e.Stack != nil {
			kv = append(kv, "stack", string(e.Stack))
		}
		h.log.Error(e.Err, "rule could not be evaluated", kv...)
	}
}

// record logs one line per decision, counts it, and counts each finding.
// Object bodies never reach the log.
func (h *handler) record(webhook string, req admission.Request, findings []rules.Finding, mutated []string, allowed bool) {
	fired := make([]string, 0, len(findings)+len(mutated))
	for _, f := range findings {
		fired = append(fired, cmp.Or(f.Rule, "daemonset-guard")+"="+string(f.Action))
		h.metrics.findings.WithLabelValues(f.Rule, string(f.Action), string(req.Operation)).Inc()
	}
	for _, rule := range mutated {
		fired = append(fired, rule+"="+string(policy.Apply))
		h.metrics.findings.WithLabelValues(rule, string(policy.Apply), string(req.Operation)).Inc()
	}
	decision := "allowed"
	switch {
	case !allowed:
		decision = "denied"
	case len(mutated) > 0:
		decision = "patched"
	}
	h.metrics.decisions.WithLabelValues(webhook, string(req.Operation), decision).Inc()
	h.log.Info("decision", "uid", req.UID, "namespace", req.Namespace, "name", req.Name,
		"operation", req.Operation, "dryRun", req.DryRun != nil && *req.DryRun, "allowed", allowed, "rules", fired)
}

func kindString(k metav1.GroupVersionKind) string {
	return fmt.Sprintf("%s/%s %s", k.Group, k.Version, k.Kind)
}

func resourceString(r metav1.GroupVersionResource, sub string) string {
	s := fmt.Sprintf("%s/%s %s", r.Group, r.Version, r.Resource)
	if sub != "" {
		s += "/" + sub
	}
	return s
}
