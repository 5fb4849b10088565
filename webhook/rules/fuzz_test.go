package rules

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// FuzzSelectorMatchesTemplate checks the rule against apimachinery's own
// selector: no finding exactly when the selector is valid and selects the
// template's labels.
func FuzzSelectorMatchesTemplate(f *testing.F) {
	f.Add("app", "fluentd", "fluentd", "tier", "In", "logging", "logging")
	f.Add("app", "fluentd", "fluent-bit", "tier", "NotIn", "web", "web")
	f.Add("app", "x", "x", "zone", "Exists", "", "")
	f.Add("app", "x", "x", "canary", "DoesNotExist", "", "true")
	f.Add("", "", "", "tier", "Near", "a", "a")
	f.Fuzz(func(t *testing.T, key, want, have, exprKey, op, exprValue, exprHave string) {
		ds := fixture.DaemonSet("fuzz", func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector = &metav1.LabelSelector{}
			ds.Spec.Template.Labels = map[string]string{}
			if key != "" {
				ds.Spec.Selector.MatchLabels = map[string]string{key: want}
				ds.Spec.Template.Labels[key] = have
			}
			if exprKey != "" {
				req := metav1.LabelSelectorRequirement{Key: exprKey, Operator: metav1.LabelSelectorOperator(op)}
				if exprValue != "" {
					req.Values = []string{exprValue}
				}
				ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{req}
				if exprHave != "" {
					ds.Spec.Template.Labels[exprKey] = exprHave
				}
			}
		})
		findings := selectorMatchesTemplate(&Input{Operation: Create, Object: ds, Policy: policy.Default(Builtin())})
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		selects := err == nil && !sel.Empty() && sel.Matches(labels.Set(ds.Spec.Template.Labels))
		if selects != (len(findings) == 0) {
			t.Fatalf("selector %v on labels %v: apimachinery says selects=%v (err %v), the rule found %v", ds.Spec.Selector, ds.Spec.Template.Labels, selects, err, findings)
		}
	})
}

// FuzzTolerated checks Tolerated against the scheduler's own matching: when
// have covers want, every taint that want tolerates, have tolerates too.
func FuzzTolerated(f *testing.F) {
	f.Add("dedicated", "Exists", "", "NoSchedule", int64(-1), "dedicated", "Equal", "gpu", "NoSchedule", int64(-1))
	f.Add("", "Exists", "", "", int64(-1), "a", "Equal", "b", "NoExecute", int64(30))
	f.Add("k", "Exists", "", "NoExecute", int64(60), "k", "Exists", "", "NoExecute", int64(-1))
	f.Add("k", "", "v", "", int64(-1), "k", "Equal", "v", "PreferNoSchedule", int64(-1))
	f.Fuzz(func(t *testing.T, hKey, hOp, hValue, hEffect string, hSeconds int64, wKey, wOp, wValue, wEffect string, wSeconds int64) {
		toleration := func(key, op, value, effect string, seconds int64) corev1.Toleration {
			tol := corev1.Toleration{Key: key, Operator: corev1.TolerationOperator(op), Value: value, Effect: corev1.TaintEffect(effect)}
			if seconds >= 0 {
				tol.TolerationSeconds = &seconds
			}
			return tol
		}
		have, want := toleration(hKey, hOp, hValue, hEffect, hSeconds), toleration(wKey, wOp, wValue, wEffect, wSeconds)
		if !Tolerated([]corev1.Toleration{have}, want) {
			return
		}
		for _, taint := range []corev1.Taint{
			{Key: wKey, Value: wValue, Effect: corev1.TaintEffect(wEffect)},
			{Key: wKey, Value: wValue + "x", Effect: corev1.TaintEffect(wEffect)},
			{Key: wKey, Value: wValue, Effect: corev1.TaintEffectNoSchedule},
			{Key: wKey, Value: wValue, Effect: corev1.TaintEffectNoExecute},
		} {
			if want.ToleratesTaint(klog.Background(), &taint, false) && !have.ToleratesTaint(klog.Background(), &taint, false) {
				t.Fatalf("Tolerated says %+v covers %+v, but only the latter tolerates %+v", have, want, taint)
			}
		}
	})
}

// FuzzMaxUnavailable checks that resolving maxUnavailable never panics and
// stays within what the controller could take down.
func FuzzMaxUnavailable(f *testing.F) {
	f.Add("1", "0", 10)
	f.Add("25%", "0", 7)
	f.Add("0", "100%", 3)
	f.Add("0", "0", 5)
	f.Add("150%", "x", 0)
	f.Fuzz(func(t *testing.T, unavailable, surge string, targeted int) {
		if targeted < 0 || targeted > 1_000_000 {
			return
		}
		ru := &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.Parse(unavailable)), MaxSurge: ptr.To(intstr.Parse(surge))}
		n, err := MaxUnavailable(ru, targeted)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("MaxUnavailable(%q, %q, %d) = %d", unavailable, surge, targeted, n)
		}
		if targeted > 0 && n == 0 {
			if s, _ := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, targeted, true); s == 0 {
				t.Fatalf("neither surge nor unavailability for %q/%q at %d: the controller would take one down", unavailable, surge, targeted)
			}
		}
	})
}

// FuzzParsePolicy checks that no document makes the policy parser panic,
// and that what it accepts with the built-in rules is valid.
func FuzzParsePolicy(f *testing.F) {
	example, err := os.ReadFile("../policy/testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"))
	f.Add([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {targets-nodes: {action: off}, rolling-update-defaults: {maxUnavailable: 2}}\n"))
	f.Add([]byte("{{{"))
	catalog := Builtin()
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := policy.Parse(doc, catalog)
		if err != nil {
			return
		}
		if errs := p.Validate(catalog); len(errs) > 0 {
			t.Fatalf("Parse accepted an invalid policy: %v", errs)
		}
	})
}
