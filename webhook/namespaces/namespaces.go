// Package namespaces keeps, for each namespace, the annotations through
// which the API server's PodNodeSelector and PodTolerationRestriction
// admission plugins change its pods, current from an informer. The DaemonSet
// controller does not read them, so they change where daemon pods actually
// run without any manifest saying so.
package namespaces

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/informed"
)

// Annotations the admission plugins read on a namespace.
const (
	// NodeSelector is PodNodeSelector's: a label selector (a=b,c=d) merged
	// into every pod's nodeSelector.
	NodeSelector = "scheduler.alpha.kubernetes.io/node-selector"
	// DefaultTolerations is PodTolerationRestriction's: a JSON list of
	// tolerations added to every new pod.
	DefaultTolerations = "scheduler.alpha.kubernetes.io/defaultTolerations"
	// TolerationsWhitelist is PodTolerationRestriction's: a JSON list of
	// tolerations; a pod with any other is refused.
	TolerationsWhitelist = "scheduler.alpha.kubernetes.io/tolerationsWhitelist"
)

var placementAnnotations = []string{NodeSelector, DefaultTolerations, TolerationsWhitelist}

// Namespaces holds each namespace's placement annotations. It is safe for
// concurrent use, and an informer keeps it current (Attach).
type Namespaces struct {
	*informed.ByName[*corev1.Namespace, map[string]string]
}

// New returns the set of the given namespaces, reporting itself synced.
// Attach it to an informer to have it follow the cluster instead.
func New(namespaces ...corev1.Namespace) *Namespaces {
	n := &Namespaces{informed.NewByName(func(ns *corev1.Namespace) map[string]string { return placement(ns.Annotations) })}
	for i := range namespaces {
		n.OnAdd(&namespaces[i], false)
	}
	return n
}

// Annotations returns the placement annotations of the named namespace, and
// whether it exists.
func (n *Namespaces) Annotations(name string) (map[string]string, bool) { return n.Get(name) }

// placement keeps the placement annotations of a namespace's annotations.
func placement(annotations map[string]string) map[string]string {
	out := maps.Clone(annotations)
	maps.DeleteFunc(out, func(k, _ string) bool { return !slices.Contains(placementAnnotations, k) })
	return out
}

// Strip is an informer transform that keeps a namespace's name and its
// placement annotations.
func Strip(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{
		TypeMeta:   ns.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Annotations: placement(ns.Annotations)},
	}, nil
}
