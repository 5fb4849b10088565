package rules

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	api "k8s.io/kubernetes/pkg/apis/core"
	corev1conversion "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/kubernetes/pkg/util/tolerations"

	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
	"github.com/daemonset-guard/daemonset-guard/webhook/namespaces"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// NamespacePlacement is the name of the rule that predicts what a
// namespace's PodNodeSelector and PodTolerationRestriction annotations do to
// the daemon pods.
const NamespacePlacement = "namespace-placement"

// Namespaces is the view of the namespaces' placement annotations that
// namespace-placement needs. *namespaces.Namespaces implements it.
type Namespaces interface {
	Synced() bool
	Annotations(name string) (map[string]string, bool)
}

// NamespacePlacement declares the rule.
func (builtin) NamespacePlacement() Rule {
	return Rule{
		Spec:    policy.Spec{Name: NamespacePlacement, Kind: policy.Validating, Default: policy.Warn},
		Summary: "the namespace's PodNodeSelector and PodTolerationRestriction annotations let every daemon pod run",
		Description: "The DaemonSet controller decides where daemon pods go from the template alone; the API server's PodNodeSelector and " +
			"PodTolerationRestriction admission plugins then change each pod by its namespace's annotations. A namespace node selector " +
			"(scheduler.alpha.kubernetes.io/node-selector) that a targeted node does not match leaves that node's pod Pending for good, while " +
			"the DaemonSet's status counts it as desired; one that conflicts with the template's nodeSelector, and a tolerations whitelist " +
			"(scheduler.alpha.kubernetes.io/tolerationsWhitelist) without the tolerations the controller adds to every daemon pod, make the API " +
			"server refuse every pod. For the plugins the policy's cluster.admissionPlugins lists, the rule applies the namespace's annotations " +
			"as those plugins do and says how many pods will stay Pending, and why. Cluster-wide defaults from the plugins' own configuration " +
			"files are not seen.",
		Check: namespacePlacement,
	}
}

// namespacePlacement applies the namespace's annotations to the daemon pods
// as the admission plugins the cluster runs would.
func namespacePlacement(in *Input) ([]Finding, error) {
	cluster := in.Policy.Cluster
	if !cluster.Runs(policy.PodNodeSelector) && !cluster.Runs(policy.PodTolerationRestriction) ||
		in.Operation == Update && in.placementUnchanged() {
		return nil, nil
	}
	path := field.NewPath("spec", "template", "spec")
	if in.Namespaces == nil || !in.Namespaces.Synced() {
		return []Finding{{Rule: NamespacePlacement, Action: policy.Warn, Field: path,
			Message: "the cluster's namespaces are not known here, so what their admission plugin annotations do to the daemon pods was not checked"}}, nil
	}
	annotations, ok := in.Namespaces.Annotations(in.Object.Namespace)
	if !ok {
		return nil, nil
	}
	spec := &in.Object.Spec.Template.Spec
	var out []Finding
	if cluster.Runs(policy.PodTolerationRestriction) {
		if f := whitelistRefusal(in.Object.Namespace, annotations, spec); f != nil {
			out = append(out, *f)
		}
	}
	if cluster.Runs(policy.PodNodeSelector) {
		f, err := in.namespaceNodeSelector(annotations)
		if err != nil {
			return nil, err
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	return out, nil
}

// namespaceNodeSelector finds the daemon pods that the namespace's node
// selector leaves Pending, or all of them refused.
func (in *Input) namespaceNodeSelector(annotations map[string]string) (*Finding, error) {
	raw, ok := annotations[namespaces.NodeSelector]
	if !ok {
		return nil, nil
	}
	ns, spec := in.Object.Namespace, &in.Object.Spec.Template.Spec
	finding := func(format string, args ...any) (*Finding, error) {
		return &Finding{Rule: NamespacePlacement, Field: field.NewPath("spec", "template", "spec", "nodeSelector"), Message: fmt.Sprintf(format, args...)}, nil
	}
	selector, err := labels.ConvertSelectorToLabelsMap(raw)
	if err != nil {
		return finding("namespace %s's %s annotation %q is no node selector (%v), so PodNodeSelector refuses every daemon pod; fix the annotation", ns, namespaces.NodeSelector, raw, err)
	}
	if labels.Conflicts(selector, spec.NodeSelector) {
		return finding("the template's nodeSelector conflicts with namespace %s's node selector (%s: %s), so PodNodeSelector refuses every daemon pod; "+
			"drop the conflicting entries from the template, or run the DaemonSet in another namespace", ns, namespaces.NodeSelector, raw)
	}
	if in.Nodes == nil || !in.Nodes.Synced() {
		return nil, nil // targets-nodes says that placement was not checked
	}
	targeted, err := in.Coverage()
	if err != nil {
		return nil, err
	}
	merged := spec.DeepCopy()
	merged.NodeSelector = labels.Merge(selector, spec.NodeSelector)
	running, err := in.Nodes.Coverage(merged)
	if err != nil {
		return nil, err
	}
	pending := targeted.Eligible - running.Eligible
	if pending <= 0 {
		return nil, nil
	}
	return finding("namespace %s's node selector (%s: %s) leaves %d of the %d nodes the DaemonSet controller targets without a running daemon pod: "+
		"the controller creates their pods all the same, which stay Pending for good while its status counts them as desired; the pods run on %d nodes. "+
		"Add %s to the template's nodeSelector, so that the controller targets only the nodes the namespace allows",
		ns, namespaces.NodeSelector, raw, pending, targeted.Eligible, running.Eligible, selector)
}

// whitelistRefusal finds a tolerations whitelist that refuses the daemon
// pods: their tolerations (the template's, those the controller adds, and
// the namespace's defaults) must each be covered by one in the whitelist.
func whitelistRefusal(ns string, annotations map[string]string, spec *corev1.PodSpec) *Finding {
	raw, ok := annotations[namespaces.TolerationsWhitelist]
	if !ok {
		return nil
	}
	finding := func(format string, args ...any) *Finding {
		return &Finding{Rule: NamespacePlacement, Field: field.NewPath("spec", "template", "spec", "tolerations"), Message: fmt.Sprintf(format, args...)}
	}
	whitelist, err := internalTolerations(raw)
	if err != nil {
		return finding("namespace %s's %s annotation is no list of tolerations (%v), so PodTolerationRestriction refuses every daemon pod; fix the annotation", ns, namespaces.TolerationsWhitelist, err)
	}
	pod, err := internal(daemonpod.Tolerations(spec))
	if err != nil {
		return nil
	}
	if defaults, ok := annotations[namespaces.DefaultTolerations]; ok {
		extra, err := internalTolerations(defaults)
		if err != nil {
			return finding("namespace %s's %s annotation is no list of tolerations (%v), so PodTolerationRestriction refuses every daemon pod; fix the annotation", ns, namespaces.DefaultTolerations, err)
		}
		pod = tolerations.MergeTolerations(pod, extra)
	}
	var outside []string
	for _, t := range pod {
		if !tolerations.VerifyAgainstWhitelist([]api.Toleration{t}, whitelist) {
			outside = append(outside, tolerationString(t))
		}
	}
	if len(outside) == 0 || len(whitelist) == 0 {
		return nil
	}
	return finding("namespace %s's tolerations whitelist (%s) does not allow %s, which every daemon pod carries (the DaemonSet controller adds most of them), "+
		"so PodTolerationRestriction refuses every daemon pod; add them to the whitelist", ns, namespaces.TolerationsWhitelist, strings.Join(outside, ", "))
}

// internalTolerations decodes an annotation's tolerations into the API
// server's internal type, which the plugin's own helpers take.
func internalTolerations(raw string) ([]api.Toleration, error) {
	if raw == "" {
		return []api.Toleration{}, nil
	}
	var v1 []corev1.Toleration
	if err := json.Unmarshal([]byte(raw), &v1); err != nil {
		return nil, err
	}
	return internal(v1)
}

func internal(v1 []corev1.Toleration) ([]api.Toleration, error) {
	out := make([]api.Toleration, len(v1))
	for i := range v1 {
		if err := corev1conversion.Convert_v1_Toleration_To_core_Toleration(&v1[i], &out[i], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func tolerationString(t api.Toleration) string {
	s := t.Key
	if t.Operator == api.TolerationOpEqual || t.Value != "" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	if s == "" {
		s = "every taint"
	}
	return s
}
