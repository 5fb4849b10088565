// Package priorityclass keeps the cluster's PriorityClasses, as few fields of
// them as the priority-class rule reads, current from an informer. A cluster
// has a handful of PriorityClasses, so they are kept whole in a map.
package priorityclass

import (
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingapi "k8s.io/kubernetes/pkg/apis/scheduling"

	"github.com/daemonset-guard/daemonset-guard/internal/informed"
)

// Class is what scheduling takes from a PriorityClass.
type Class struct {
	Name          string
	Value         int32
	GlobalDefault bool
	// Preempts is false for preemptionPolicy Never: the scheduler then
	// evicts nothing to make room for the class's pods.
	Preempts bool
}

// Of returns the Class of a PriorityClass.
func Of(pc *schedulingv1.PriorityClass) Class {
	return Class{Name: pc.Name, Value: pc.Value, GlobalDefault: pc.GlobalDefault,
		Preempts: pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != corev1.PreemptNever}
}

// System returns the named system class, which every API server creates:
// what is known of priorities without the cluster. Unlike the API's own
// list, it allocates nothing, as the request path wants.
func System(name string) (Class, bool) {
	switch name {
	case schedulingapi.SystemNodeCritical:
		return Class{Name: name, Value: schedulingapi.SystemCriticalPriority + 1000, Preempts: true}, true
	case schedulingapi.SystemClusterCritical:
		return Class{Name: name, Value: schedulingapi.SystemCriticalPriority, Preempts: true}, true
	}
	return Class{}, false
}

// Classes is the set of the cluster's PriorityClasses. It is safe for
// concurrent use, and an informer keeps it current (Attach).
type Classes struct {
	*informed.ByName[*schedulingv1.PriorityClass, Class]
}

// New returns the set of the given classes, reporting itself synced. Attach
// it to an informer to have it follow the cluster instead.
func New(classes ...schedulingv1.PriorityClass) *Classes {
	c := &Classes{informed.NewByName(Of)}
	for i := range classes {
		c.OnAdd(&classes[i], false)
	}
	return c
}

// GlobalDefault returns the class that pods without a priorityClassName get,
// as the API server's Priority admission plugin picks it: of several global
// defaults (possible while one is being replaced), the lowest.
func (c *Classes) GlobalDefault() (Class, bool) {
	var def Class
	found := false
	for class := range c.All() {
		if class.GlobalDefault && (!found || class.Value < def.Value) {
			def, found = class, true
		}
	}
	return def, found
}

// Strip is an informer transform that keeps only the fields Class reads.
func Strip(obj any) (any, error) {
	pc, ok := obj.(*schedulingv1.PriorityClass)
	if !ok {
		return obj, nil
	}
	return &schedulingv1.PriorityClass{
		TypeMeta:         pc.TypeMeta,
		ObjectMeta:       metav1.ObjectMeta{Name: pc.Name, UID: pc.UID, ResourceVersion: pc.ResourceVersion},
		Value:            pc.Value,
		GlobalDefault:    pc.GlobalDefault,
		PreemptionPolicy: pc.PreemptionPolicy,
	}, nil
}
