// Package daemonpod holds what the DaemonSet controller does to a pod template
// before it places the pod, so that the webhook can predict placement and can
// stay away from fields the controller owns.
package daemonpod

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// controllerTolerations mirrors AddOrUpdateDaemonPodTolerations in
// k8s.io/kubernetes/pkg/controller/daemon/util, which the webhook cannot
// import without pulling in the whole of Kubernetes.
var controllerTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

var hostNetworkToleration = corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

// Tolerations returns the tolerations the controller gives a daemon pod made
// from spec: the template's own followed by those the controller adds.
func Tolerations(spec *corev1.PodSpec) []corev1.Toleration {
	out := make([]corev1.Toleration, 0, len(spec.Tolerations)+len(controllerTolerations)+1)
	out = append(out, spec.Tolerations...)
	out = append(out, controllerTolerations...)
	if spec.HostNetwork {
		out = append(out, hostNetworkToleration)
	}
	return out
}

// AddedByController reports whether the controller adds a toleration of the
// taint key to daemon pods (for host-network pods at least). Such tolerations
// never belong in a template: the pods have them anyway, and a template change
// rolls every pod.
func AddedByController(key string) bool {
	return key == hostNetworkToleration.Key || slices.ContainsFunc(controllerTolerations, func(t corev1.Toleration) bool { return t.Key == key })
}
