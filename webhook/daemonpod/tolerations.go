// Package daemonpod holds what the DaemonSet controller does to a pod template
// before it places the pod, so that the webhook can predict placement and can
// stay away from fields the controller owns. It calls the controller's own
// code (k8s.io/kubernetes/pkg/controller/daemon/util) rather than a copy.
package daemonpod

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	daemonutil "k8s.io/kubernetes/pkg/controller/daemon/util"
)

// Tolerations returns the tolerations the controller gives a daemon pod made
// from spec: the template's own, with those the controller adds to every
// daemon pod (not-ready, unreachable, the pressure conditions, unschedulable,
// and network-unavailable for host-network pods). spec is not changed.
func Tolerations(spec *corev1.PodSpec) []corev1.Toleration {
	pod := corev1.PodSpec{HostNetwork: spec.HostNetwork, Tolerations: slices.Clone(spec.Tolerations)}
	daemonutil.AddOrUpdateDaemonPodTolerations(&pod)
	return pod.Tolerations
}

// AddedByController reports whether the controller adds a toleration of the
// taint key to daemon pods (to host-network pods at least). Such tolerations
// never belong in a template: the pods have them anyway, and a template change
// rolls every pod.
func AddedByController(key string) bool {
	return slices.ContainsFunc(Tolerations(&corev1.PodSpec{HostNetwork: true}), func(t corev1.Toleration) bool { return t.Key == key })
}
