// Package generate makes random DaemonSets and policies for property tests,
// reproducible from a seed that a failing test prints.
package generate

import (
	"fmt"
	"math/rand/v2"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/generate/placement"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

var (
	someTolerations = []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Operator: corev1.TolerationOpExists},
		{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)},
	}
	someShares = []intstr.IntOrString{intstr.FromInt32(1), intstr.FromInt32(3), intstr.FromString("10%"), intstr.FromString("25%"), intstr.FromString("100%")}
)

// Policy returns the default policy with some default tolerations and rollout
// defaults.
func Policy(rng *rand.Rand) *policy.Policy {
	p := policy.Default(rules.Builtin())
	policy.OptionsOf[*rules.DefaultTolerationsOptions](p, rules.DefaultTolerations).Tolerations = placement.Pick(rng, someTolerations[:3])
	if rng.IntN(2) == 0 {
		policy.OptionsOf[*rules.RollingUpdateDefaultsOptions](p, rules.RollingUpdateDefaults).MaxUnavailable = ptr.To(someShares[rng.IntN(len(someShares))])
	}
	if rng.IntN(2) == 0 {
		policy.OptionsOf[*rules.RollingUpdateDefaultsOptions](p, rules.RollingUpdateDefaults).MinReadySeconds = ptr.To(int32(rng.IntN(30)))
	}
	return p
}

// DaemonSet writes a DaemonSet named ds-i as a user might: some tolerations,
// a strategy or not, a nodeSelector or not, annotations that change the rules.
func DaemonSet(rng *rand.Rand, i int) *appsv1.DaemonSet {
	ds := fixture.Written(fmt.Sprintf("ds-%d", i))
	ds.Spec.Template.Spec.Tolerations = placement.Pick(rng, someTolerations)
	switch rng.IntN(4) {
	case 0:
		ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	case 1:
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(someShares[rng.IntN(len(someShares))])}
	}
	if rng.IntN(3) == 0 {
		ds.Spec.MinReadySeconds = int32(rng.IntN(20))
	}
	if rng.IntN(3) == 0 {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"disktype": []string{"ssd", "hdd", "nvme"}[rng.IntN(3)]}
	}
	switch rng.IntN(5) {
	case 0:
		ds.Annotations = map[string]string{rules.SkipAnnotation: "default-tolerations"}
	case 1:
		ds.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"minReadySeconds":0,"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}}}}`}
	}
	return ds
}
