package rules

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

var (
	controlPlaneToleration = corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	gpuToleration          = corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
)

// examplePolicy is the policy of the README: control-plane toleration, 10%
// maxUnavailable, 10 seconds minReadySeconds.
func examplePolicy() *policy.Policy {
	p := policy.Default(Builtin())
	policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations).Tolerations = []corev1.Toleration{controlPlaneToleration}
	policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults).MaxUnavailable = ptr.To(intstr.FromString("10%"))
	policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults).MinReadySeconds = ptr.To[int32](10)
	return p
}

func TestMutate(t *testing.T) {
	tests := []struct {
		name   string
		old    *appsv1.DaemonSet // nil means CREATE
		ds     *appsv1.DaemonSet
		policy func(*policy.Policy)
		// want is ds after the mutation; nil means unchanged.
		want        *appsv1.DaemonSet
		wantChanged []string
	}{
		{
			name: "injects the policy's toleration, maxUnavailable and minReadySeconds into a new DaemonSet",
			ds:   fixture.DaemonSet("fluentd"),
			want: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMaxUnavailable(intstr.FromString("10%")), withMinReady(10),
				withAnnotation(MutatedAnnotation, "default-tolerations,rolling-update-defaults")),
			wantChanged: []string{"default-tolerations", "rolling-update-defaults"},
		},
		{
			name: "keeps a toleration the template already has, written the same way",
			ds:   fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
		},
		{
			name: "counts a toleration with operator Exists and no key as covering every taint",
			ds:   fixture.DaemonSet("fluentd", withTolerations(corev1.Toleration{Operator: corev1.TolerationOpExists}), withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
		},
		{
			name: "counts a toleration of the same key with an empty effect as covering every effect",
			ds: fixture.DaemonSet("fluentd", withTolerations(corev1.Toleration{Key: controlPlaneToleration.Key, Operator: corev1.TolerationOpExists}),
				withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
		},
		{
			name: "adds the toleration when the existing one tolerates only one value of the key",
			ds: fixture.DaemonSet("fluentd", withTolerations(corev1.Toleration{Key: controlPlaneToleration.Key, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}),
				withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
			want: fixture.DaemonSet("fluentd", withTolerations(corev1.Toleration{Key: controlPlaneToleration.Key, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}, controlPlaneToleration),
				withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5), withAnnotation(MutatedAnnotation, "default-tolerations")),
			wantChanged: []string{"default-tolerations"},
		},
		{
			name: "appends after the user's tolerations without replacing them",
			ds:   fixture.DaemonSet("fluentd", withTolerations(gpuToleration), withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
			want: fixture.DaemonSet("fluentd", withTolerations(gpuToleration, controlPlaneToleration), withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5),
				withAnnotation(MutatedAnnotation, "default-tolerations")),
			wantChanged: []string{"default-tolerations"},
		},
		{
			name: "never changes the pod template on an update that leaves the template alone",
			old:  fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
			ds:   fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5), func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} }),
		},
		{
			name: "adds the tolerations on an update that changes the template anyway",
			old:  fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5)),
			ds:   fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5), withImage("fluentd:v2")),
			want: fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(2)), withMinReady(5), withImage("fluentd:v2"), withTolerations(controlPlaneToleration),
				withAnnotation(MutatedAnnotation, "default-tolerations")),
			wantChanged: []string{"default-tolerations"},
		},
		{
			name: "applies rollout defaults on an update, which starts no rollout, and records both rules",
			old:  fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withAnnotation(MutatedAnnotation, "default-tolerations")),
			ds:   fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withAnnotation(MutatedAnnotation, "default-tolerations")),
			want: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMaxUnavailable(intstr.FromString("10%")), withMinReady(10),
				withAnnotation(MutatedAnnotation, "default-tolerations,rolling-update-defaults")),
			wantChanged: []string{"rolling-update-defaults"},
		},
		{
			name: "respects an explicit OnDelete strategy",
			ds: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(5), func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
			}),
		},
		{
			name: "keeps a maxUnavailable of 1 that client-side kubectl apply says the user wrote",
			ds: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(5),
				withAnnotation(lastAppliedAnnotation, `{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}}}}`)),
		},
		{
			name: "keeps a maxUnavailable of 1 and minReadySeconds of 0 that a server-side apply manager owns",
			ds: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), func(ds *appsv1.DaemonSet) {
				ds.ManagedFields = []metav1.ManagedFieldsEntry{{
					Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1",
					FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:minReadySeconds":{},"f:updateStrategy":{"f:rollingUpdate":{"f:maxUnavailable":{}}}}}`),
				}}
			}),
		},
		{
			name: "ignores fields owned by a manager that updated rather than applied",
			ds: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(5), func(ds *appsv1.DaemonSet) {
				ds.ManagedFields = []metav1.ManagedFieldsEntry{{
					Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
					FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:updateStrategy":{"f:rollingUpdate":{"f:maxUnavailable":{}}}}}`),
				}}
			}),
			want: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(5), withMaxUnavailable(intstr.FromString("10%")), func(ds *appsv1.DaemonSet) {
				ds.ManagedFields = []metav1.ManagedFieldsEntry{{
					Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
					FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:updateStrategy":{"f:rollingUpdate":{"f:maxUnavailable":{}}}}}`),
				}}
			}, withAnnotation(MutatedAnnotation, "rolling-update-defaults")),
			wantChanged: []string{"rolling-update-defaults"},
		},
		{
			name: "keeps a maxUnavailable of 1 that an update sets, as kubectl edit or Helm's three-way merge do",
			old:  fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(10), withMaxUnavailable(intstr.FromString("10%"))),
			ds:   fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(10)),
		},
		{
			name: "keeps a minReadySeconds of 0 that an update sets",
			old:  fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMinReady(10), withMaxUnavailable(intstr.FromString("10%"))),
			ds:   fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMaxUnavailable(intstr.FromString("10%"))),
		},
		{
			name: "applies the rollout defaults on an update of a DaemonSet stored before the policy had them",
			old:  fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration)),
			ds:   fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} }),
			want: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withMaxUnavailable(intstr.FromString("10%")), withMinReady(10),
				func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} }, withAnnotation(MutatedAnnotation, "rolling-update-defaults")),
			wantChanged: []string{"rolling-update-defaults"},
		},
		{
			name: "skips the rules named in the skip annotation",
			ds:   fixture.DaemonSet("fluentd", withAnnotation(SkipAnnotation, "default-tolerations,rolling-update-defaults")),
		},
		{
			name: "applies a rule the skip annotation names when the policy does not let it be skipped",
			ds:   fixture.DaemonSet("fluentd", withAnnotation(SkipAnnotation, "default-tolerations,rolling-update-defaults")),
			policy: func(p *policy.Policy) {
				p.SkipAnnotation = &policy.SkipAnnotation{Rules: []string{RollingUpdateDefaults}}
			},
			want: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), withAnnotation(SkipAnnotation, "default-tolerations,rolling-update-defaults"),
				withAnnotation(MutatedAnnotation, "default-tolerations")),
			wantChanged: []string{"default-tolerations"},
		},
		{
			name: "skips the rules a namespace is exempt from",
			ds:   fixture.DaemonSet("fluentd"),
			policy: func(p *policy.Policy) {
				p.Exemptions = []policy.Exemption{{Namespaces: []string{"logging"}, Rules: Builtin().Names()}}
			},
		},
		{
			name: "changes nothing when the policy switches the mutation rules off",
			ds:   fixture.DaemonSet("fluentd"),
			policy: func(p *policy.Policy) {
				p.Rules[DefaultTolerations].Action = policy.Off
				p.Rules[RollingUpdateDefaults].Action = policy.Off
			},
		},
		{
			name:   "changes nothing under the built-in policy",
			ds:     fixture.DaemonSet("fluentd"),
			policy: func(p *policy.Policy) { *p = *policy.Default(Builtin()) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := examplePolicy()
			if tt.policy != nil {
				tt.policy(p)
			}
			want := tt.want
			if want == nil {
				want = tt.ds.DeepCopy()
			}
			in := &Input{Operation: Create, Object: tt.ds, OldObject: tt.old, Policy: p}
			if tt.old != nil {
				in.Operation = Update
			}
			// Asked on a shallow copy, as the validator and the baseline
			// ask, Mutate changes the copy alone.
			original := tt.ds.DeepCopy()
			probe := &Input{Operation: in.Operation, Object: probeOf(tt.ds), OldObject: tt.old, Policy: p}
			Builtin().Mutate(probe)
			if !equality.Semantic.DeepEqual(tt.ds, original) {
				t.Fatalf("mutating a shallow copy changed the original:\n got  %+v\n want %+v", tt.ds, original)
			}
			if !equality.Semantic.DeepEqual(probe.Object, want) {
				t.Errorf("the shallow copy's mutation differs from the expected one:\n got  %+v\n want %+v", probe.Object.Spec, want.Spec)
			}
			changed, errs := Builtin().Mutate(in)
			if errs != nil {
				t.Fatalf("rule errors: %v", errs)
			}
			if !equality.Semantic.DeepEqual(changed, tt.wantChanged) {
				t.Errorf("changed %v, want %v", changed, tt.wantChanged)
			}
			if !equality.Semantic.DeepEqual(in.Object, want) {
				t.Errorf("mutated object differs from the expected one:\n got  %+v\n want %+v", in.Object.Spec, want.Spec)
			}
			// Idempotence: a second pass, as on reinvocation, changes nothing.
			again := in.Object.DeepCopy()
			second := &Input{Operation: in.Operation, Object: again, OldObject: tt.old, Policy: p}
			if changed, _ := Builtin().Mutate(second); changed != nil || !equality.Semantic.DeepEqual(again, in.Object) {
				t.Errorf("a second mutation changed %v", changed)
			}
		})
	}
}

func TestMutateKeepsWhatTheWrittenFileSets(t *testing.T) {
	written := fixture.Written("calico-node", withTolerations(controlPlaneToleration))
	written.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	in := &Input{Operation: Create, Object: fixture.DaemonSet("calico-node", withTolerations(controlPlaneToleration)), Written: written, Policy: examplePolicy()}
	changed, _ := Builtin().Mutate(in)
	if got := *in.Object.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; got != intstr.FromInt32(1) {
		t.Errorf("maxUnavailable = %s, want the file's 1", got.String())
	}
	if !equality.Semantic.DeepEqual(changed, []string{RollingUpdateDefaults}) || in.Object.Spec.MinReadySeconds != 10 {
		t.Errorf("changed %v with minReadySeconds %d, want only minReadySeconds set to the policy's 10", changed, in.Object.Spec.MinReadySeconds)
	}
}

func TestAMutationRuleThatPanicsChangesNothingAndIsReported(t *testing.T) {
	catalog := withRule(t, DefaultTolerations, func(r *Rule) {
		r.Apply = func(in *Input) bool {
			in.Object.Spec.Template.Spec.Tolerations = append(in.Object.Spec.Template.Spec.Tolerations, gpuToleration)
			in.Object.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(7))
			panic("half-way")
		}
	})

	ds := fixture.DaemonSet("fluentd")
	in := &Input{Operation: Create, Object: ds, Policy: examplePolicy()}
	changed, errs := catalog.Mutate(in)
	if len(errs) != 1 || errs[0].Rule != DefaultTolerations || !strings.Contains(errs[0].Error(), "panic: half-way") || len(errs[0].Stack) == 0 {
		t.Fatalf("errors %v, want the panic of default-tolerations with its stack", errs)
	}
	if !equality.Semantic.DeepEqual(changed, []string{RollingUpdateDefaults}) {
		t.Errorf("changed %v, want only the rule that did not fail", changed)
	}
	if len(ds.Spec.Template.Spec.Tolerations) != 0 || *ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable != intstr.FromString("10%") {
		t.Errorf("the failed rule's half-way changes leaked into the object: %+v", ds.Spec)
	}
	findings := MutationFindings(in, errs)
	if len(findings) != 1 || findings[0].Action != policy.Warn || !strings.Contains(findings[0].Message, "could not be evaluated") {
		t.Errorf("findings %v, want one warning", findings)
	}
}

func TestTolerated(t *testing.T) {
	seconds := func(s int64) *int64 { return &s }
	noExecute := corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	tests := []struct {
		name string
		have corev1.Toleration
		want corev1.Toleration
		ok   bool
	}{
		{"Exists without key covers any toleration", corev1.Toleration{Operator: corev1.TolerationOpExists}, gpuToleration, true},
		{"Exists without key but with an effect covers only that effect", corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}, gpuToleration, false},
		{"Exists on the key covers Equal on the key", corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, gpuToleration, true},
		{"Equal covers Equal with the same value", gpuToleration, gpuToleration, true},
		{"an empty operator means Equal", corev1.Toleration{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}, gpuToleration, true},
		{"Equal does not cover another value", corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}, gpuToleration, false},
		{"Equal does not cover Exists", gpuToleration, corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, false},
		{"an empty effect covers every effect", corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}, gpuToleration, true},
		{"one effect does not cover an empty effect", gpuToleration, corev1.Toleration{Key: "dedicated", Value: "gpu"}, false},
		{"another key is not covered", controlPlaneToleration, gpuToleration, false},
		{"a bounded NoExecute toleration does not cover an unbounded one", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds(60)}, noExecute, false},
		{"a longer bound covers a shorter one", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds(600)},
			corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds(60)}, true},
		{"a comparison operator covers nothing", corev1.Toleration{Key: "k", Operator: "Gt", Value: "5"}, noExecute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Tolerated([]corev1.Toleration{tt.have}, tt.want); got != tt.ok {
				t.Errorf("Tolerated(%v, %v) = %v, want %v", tt.have, tt.want, got, tt.ok)
			}
		})
	}
}

func withMinReady(s int32) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = s }
}

func withImage(image string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = image }
}

func withAnnotation(k, v string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) {
		if ds.Annotations == nil {
			ds.Annotations = map[string]string{}
		}
		ds.Annotations[k] = v
	}
}
