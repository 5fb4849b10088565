package rules

import (
	"cmp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1helpers "k8s.io/kubernetes/pkg/apis/scheduling/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
)

// priorityClasses returns the classes of a fresh cluster, which has the
// system classes, and the given ones.
func priorityClasses(extra ...schedulingv1.PriorityClass) *priorityclass.Classes {
	var all []schedulingv1.PriorityClass
	for _, pc := range schedulingv1helpers.SystemPriorityClasses() {
		all = append(all, *pc)
	}
	return priorityclass.New(append(all, extra...)...)
}

func class(name string, value int32, changes ...func(*schedulingv1.PriorityClass)) schedulingv1.PriorityClass {
	pc := schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
	for _, change := range changes {
		change(&pc)
	}
	return pc
}

func withPriorityClass(name string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.PriorityClassName = name }
}

func inNamespace(ns string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Namespace = ns }
}

func TestPriorityClass(t *testing.T) {
	globalDefault := func(pc *schedulingv1.PriorityClass) { pc.GlobalDefault = true }
	never := func(pc *schedulingv1.PriorityClass) { policy := corev1.PreemptNever; pc.PreemptionPolicy = &policy }
	tests := []struct {
		name    string
		op      Operation
		old, ds *appsv1.DaemonSet
		classes PriorityClasses
		want    []string
	}{
		{
			name:    "warns of a log shipper without a priorityClassName, which waits forever on a full node",
			ds:      fixture.DaemonSet("fluent-bit", withPriorityClass("")),
			classes: priorityClasses(),
			want: []string{"the DaemonSet has no priorityClassName, so its pods get priority 0, as ordinary pods do: the scheduler preempts only pods of strictly lower priority, " +
				"so on a node that ordinary pods have filled a daemon pod stays Pending for good; set priorityClassName: system-node-critical for a node agent, or name a class above the default"},
		},
		{
			name:    "names the global default class that pods without a priorityClassName get",
			ds:      fixture.DaemonSet("fluent-bit", withPriorityClass("")),
			classes: priorityClasses(class("default-workloads", 100, globalDefault)),
			want:    []string{"so its pods get the global default PriorityClass default-workloads (value 100), as ordinary pods do"},
		},
		{
			name:    "says nothing of a CNI agent at system-node-critical",
			ds:      fixture.DaemonSet("calico-node", withPriorityClass("system-node-critical")),
			classes: priorityClasses(),
		},
		{
			name:    "says nothing of a node exporter at system-cluster-critical outside the critical namespaces",
			ds:      fixture.DaemonSet("node-exporter", withPriorityClass("system-cluster-critical"), inNamespace("monitoring")),
			classes: priorityClasses(),
		},
		{
			name:    "says nothing of a class of its own above the default",
			ds:      fixture.DaemonSet("datadog-agent", withPriorityClass("node-agents")),
			classes: priorityClasses(class("node-agents", 1000)),
		},
		{
			name:    "warns of a class that is not above the global default",
			ds:      fixture.DaemonSet("datadog-agent", withPriorityClass("default-workloads")),
			classes: priorityClasses(class("default-workloads", 100, globalDefault)),
			want:    []string{"its PriorityClass default-workloads has value 100, as ordinary pods do"},
		},
		{
			name:    "warns of a class that does not exist, for which every daemon pod is refused",
			ds:      fixture.DaemonSet("datadog-agent", withPriorityClass("node-agent")),
			classes: priorityClasses(class("node-agents", 1000)),
			want: []string{"no PriorityClass node-agent exists, so the API server refuses every pod of the DaemonSet: " +
				"create it, or name an existing class such as system-node-critical"},
		},
		{
			name:    "warns of a class that never preempts",
			ds:      fixture.DaemonSet("gpu-device-plugin", withPriorityClass("high-no-preempt")),
			classes: priorityClasses(class("high-no-preempt", 1000000, never)),
			want:    []string{"PriorityClass high-no-preempt has preemptionPolicy Never, so the scheduler preempts nothing for the DaemonSet's pods"},
		},
		{
			name:    "asks a DaemonSet in a critical namespace for the policy's minimum",
			ds:      fixture.DaemonSet("kube-proxy", withPriorityClass("system-cluster-critical"), inNamespace("kube-system")),
			classes: priorityClasses(),
			want: []string{"namespace kube-system is critical in the policy, which asks its DaemonSets for PriorityClass system-node-critical (value 2000001000) or above, " +
				"and its PriorityClass system-cluster-critical has value 2000000000: on a full node its pods wait behind pods that matter less; set priorityClassName: system-node-critical"},
		},
		{
			name:    "says nothing of an update that rolls no pod",
			op:      Update,
			old:     fixture.DaemonSet("fluent-bit", withPriorityClass("")),
			ds:      fixture.DaemonSet("fluent-bit", withPriorityClass(""), func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = 5 }),
			classes: priorityClasses(),
		},
		{
			name:    "warns of an update that rolls pods, whose new pods must find room again",
			op:      Update,
			old:     fixture.DaemonSet("fluent-bit", withPriorityClass("")),
			ds:      fixture.DaemonSet("fluent-bit", withPriorityClass(""), withImage("fluent-bit:4")),
			classes: priorityClasses(),
			want:    []string{"the DaemonSet has no priorityClassName"},
		},
		{
			name: "offline, warns of a missing priorityClassName without naming a priority it cannot know",
			ds:   fixture.DaemonSet("fluent-bit", withPriorityClass("")),
			want: []string{"the DaemonSet has no priorityClassName, so its pods get the default priority, as ordinary pods do"},
		},
		{
			name: "offline, knows the system classes",
			ds:   fixture.DaemonSet("calico-node", withPriorityClass("system-node-critical")),
		},
		{
			name: "offline, says that a class of its own was not checked",
			ds:   fixture.DaemonSet("datadog-agent", withPriorityClass("node-agents")),
			want: []string{`the cluster's PriorityClasses are not known here, so PriorityClass "node-agents" was not checked`},
		},
		{
			name:    "says nothing until the classes have synced, as it would offline",
			ds:      fixture.DaemonSet("calico-node", withPriorityClass("system-node-critical")),
			classes: unsyncedClasses{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRuleFindings(t, &Input{Operation: cmp.Or(tt.op, Create), Object: tt.ds, OldObject: tt.old,
				Policy: policy.Default(Builtin()), PriorityClasses: tt.classes}, PriorityClass, tt.want)
		})
	}
}

func TestPriorityClassSaysOfflineThatACustomMinimumWasNotChecked(t *testing.T) {
	p := policy.Default(Builtin())
	policy.OptionsOf[*PriorityClassOptions](p, PriorityClass).Minimum = "node-agents"
	expectRuleFindings(t, &Input{Operation: Create, Object: fixture.DaemonSet("kube-proxy", inNamespace("kube-system")), Policy: p}, PriorityClass,
		[]string{`the cluster's PriorityClasses are not known here, so PriorityClass "node-agents" was not checked`})
}

func TestPriorityClassMinimumThatDoesNotExistIsARuleError(t *testing.T) {
	p := policy.Default(Builtin())
	policy.OptionsOf[*PriorityClassOptions](p, PriorityClass).Minimum = "node-critical"
	_, errs := Builtin().Validate(&Input{Operation: Create, Object: fixture.DaemonSet("kube-proxy", inNamespace("kube-system")), Policy: p, PriorityClasses: priorityClasses()})
	if len(errs) != 1 || errs[0].Rule != PriorityClass {
		t.Fatalf("rule errors = %v, want one of %s saying the minimum class does not exist", errs, PriorityClass)
	}
}

type unsyncedClasses struct{}

func (unsyncedClasses) Synced() bool { return false }
func (unsyncedClasses) Get(string) (priorityclass.Class, bool) {
	return priorityclass.Class{Value: -1}, true
}
func (unsyncedClasses) GlobalDefault() (priorityclass.Class, bool) {
	return priorityclass.Class{}, false
}
