package rules

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// SelectorOverlap is the name of the rule that finds DaemonSets whose
// selector and another workload's overlap.
const SelectorOverlap = "selector-overlap"

// Workload is a controller of pods in the DaemonSet's namespace: its kind,
// name, selector and pod template labels.
type Workload struct {
	Kind, Name     string
	Selector       *metav1.LabelSelector
	TemplateLabels map[string]string
}

// Workloads is the view of the pod controllers (DaemonSets, Deployments,
// StatefulSets and ReplicaSets no Deployment owns) that selector-overlap
// needs. audit and check --kubeconfig list them; the webhook does not hold
// them, so the rule says nothing at admission.
type Workloads interface {
	InNamespace(namespace string) []Workload
}

// WorkloadsByNamespace is a listed set of workloads.
type WorkloadsByNamespace map[string][]Workload

// InNamespace implements Workloads.
func (w WorkloadsByNamespace) InNamespace(namespace string) []Workload { return w[namespace] }

// SelectorOverlap declares the rule.
func (builtin) SelectorOverlap() Rule {
	return Rule{
		Spec:    policy.Spec{Name: SelectorOverlap, Kind: policy.Validating, Default: policy.Warn},
		Summary: "no other workload in the namespace selects the DaemonSet's pods, nor it theirs",
		Description: "Controllers adopt the orphaned pods their selector matches. When a DaemonSet's selector matches the pod template of a " +
			"Deployment, StatefulSet, ReplicaSet or another DaemonSet in its namespace, or theirs matches its template, deleting either with " +
			"--cascade=orphan hands its pods to the other, which deletes those it did not make, and Services and PodDisruptionBudgets that " +
			"select by the same labels count both. The rule compares the selector and template labels of the namespace's workloads, in audit " +
			"and in check --kubeconfig, which list them; the webhook holds no such cache, so it says nothing at admission.",
		Check: infallible(selectorOverlap),
	}
}

// selectorOverlap finds the namespace's workloads whose pods the
// DaemonSet's selector selects, or whose selector selects its pods.
func selectorOverlap(in *Input) []Finding {
	if in.Workloads == nil {
		return nil
	}
	ds := in.Object
	own, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || own.Empty() {
		return nil // selector-matches-template says so
	}
	var out []Finding
	for _, w := range in.Workloads.InNamespace(ds.Namespace) {
		if w.Kind == "DaemonSet" && w.Name == ds.Name {
			continue
		}
		theirs, err := metav1.LabelSelectorAsSelector(w.Selector)
		if err != nil {
			continue
		}
		var ways []string
		if own.Matches(labels.Set(w.TemplateLabels)) {
			ways = append(ways, fmt.Sprintf("its selector (%s) selects the pods of %s %s", own, w.Kind, w.Name))
		}
		if !theirs.Empty() && theirs.Matches(labels.Set(ds.Spec.Template.Labels)) {
			ways = append(ways, fmt.Sprintf("the selector of %s %s (%s) selects its pods", w.Kind, w.Name, theirs))
		}
		if len(ways) == 0 {
			continue
		}
		out = append(out, Finding{Rule: SelectorOverlap, Field: field.NewPath("spec", "selector"), Message: fmt.Sprintf(
			"%s: deleting either with --cascade=orphan hands its pods to the other, which deletes those it did not make; "+
				"give the DaemonSet's template a label that only it has, and select on it", strings.Join(ways, ", and "))})
	}
	return out
}
