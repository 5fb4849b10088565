package nodechange

import (
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// DaemonSet is what the re-evaluation keeps of a DaemonSet, and what
// StripDaemonSet makes of one in the informer's store: its identity, its
// skip annotation and the pod template's placement fields. A stripped
// appsv1.DaemonSet would be a 1,208-byte struct however few of its fields
// are set; this is about a tenth of that, for every DaemonSet of the cluster
// (issue 16).
type DaemonSet struct {
	Namespace, Name, ResourceVersion string
	UID                              types.UID
	// Deleting is true once the DaemonSet has a deletionTimestamp.
	Deleting bool
	// Skip is the value of its rules.SkipAnnotation, nil without one.
	Skip      *string
	Placement Placement
}

// Placement holds the fields of a pod template that decide, with the
// DaemonSet controller's own tolerations, which nodes it runs on.
type Placement struct {
	NodeName     string
	NodeSelector map[string]string
	NodeAffinity *corev1.NodeAffinity
	Tolerations  []corev1.Toleration
	// HostNetwork decides whether the controller tolerates unavailable
	// networks.
	HostNetwork bool
}

// Object returns a new DaemonSet holding what d keeps, for the rules and
// the Events that take an appsv1.DaemonSet. It has no resourceVersion.
func (d *DaemonSet) Object() *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name, UID: d.UID}}
	if d.Skip != nil {
		ds.Annotations = map[string]string{rules.SkipAnnotation: *d.Skip}
	}
	p, spec := d.Placement, &ds.Spec.Template.Spec
	spec.NodeName, spec.NodeSelector, spec.Tolerations, spec.HostNetwork = p.NodeName, p.NodeSelector, p.Tolerations, p.HostNetwork
	if p.NodeAffinity != nil {
		spec.Affinity = &corev1.Affinity{NodeAffinity: p.NodeAffinity}
	}
	return ds
}

// GetObjectKind implements runtime.Object: a stripped DaemonSet has no kind.
func (*DaemonSet) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (d *DaemonSet) DeepCopyObject() runtime.Object {
	c := *d
	if d.Skip != nil {
		skip := *d.Skip
		c.Skip = &skip
	}
	c.Placement.NodeSelector = maps.Clone(d.Placement.NodeSelector)
	c.Placement.NodeAffinity = d.Placement.NodeAffinity.DeepCopy()
	if d.Placement.Tolerations != nil {
		c.Placement.Tolerations = make([]corev1.Toleration, len(d.Placement.Tolerations))
		for i := range d.Placement.Tolerations {
			d.Placement.Tolerations[i].DeepCopyInto(&c.Placement.Tolerations[i])
		}
	}
	return &c
}

// GetObjectMeta implements metav1.ObjectMetaAccessor, through which the
// informer's store reads the namespace, name and resourceVersion. What it
// returns is a copy: setting its fields changes nothing.
func (d *DaemonSet) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name, UID: d.UID, ResourceVersion: d.ResourceVersion}
}

// StripDaemonSet is an informer transform that turns a DaemonSet into the
// DaemonSet the re-evaluation keeps. The rest of a DaemonSet (containers,
// volumes, status, managedFields) is most of it. Other objects, such as the
// tombstones of deleted ones, pass unchanged.
func StripDaemonSet(obj any) (any, error) {
	if ds, ok := obj.(*appsv1.DaemonSet); ok {
		return daemonSetOf(ds), nil
	}
	return obj, nil
}

// daemonSetOf returns what the re-evaluation keeps of an informer's object:
// the object itself if StripDaemonSet stripped it, or a whole DaemonSet
// stripped here; nil for anything else.
func daemonSetOf(obj any) *DaemonSet {
	switch ds := obj.(type) {
	case *DaemonSet:
		return ds
	case *appsv1.DaemonSet:
		spec := &ds.Spec.Template.Spec
		stripped := &DaemonSet{
			Namespace: ds.Namespace, Name: ds.Name, ResourceVersion: ds.ResourceVersion, UID: ds.UID,
			Deleting: ds.DeletionTimestamp != nil,
			Placement: Placement{
				NodeName: spec.NodeName, NodeSelector: spec.NodeSelector,
				Tolerations: spec.Tolerations, HostNetwork: spec.HostNetwork,
			},
		}
		if spec.Affinity != nil {
			stripped.Placement.NodeAffinity = spec.Affinity.NodeAffinity
		}
		if skip, ok := ds.Annotations[rules.SkipAnnotation]; ok {
			stripped.Skip = &skip
		}
		return stripped
	}
	return nil
}
