package rules

import (
	"errors"
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

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

// FuzzMaxUnavailable holds MaxUnavailable to an oracle of its own: the
// controller's arithmetic done with apimachinery's scaling directly (a
// percentage of the targeted nodes, rounded up; one pod at a time when
// neither unavailability nor surge is set), on strategies of either type.
func FuzzMaxUnavailable(f *testing.F) {
	f.Add("1", "0", 10, true)
	f.Add("25%", "0", 7, true)
	f.Add("0", "100%", 3, true)
	f.Add("0", "0", 5, true)
	f.Add("150%", "x", 0, true)
	f.Add("3", "0", 5, false)
	f.Fuzz(func(t *testing.T, unavailable, surge string, targeted int, rolling bool) {
		if targeted < 0 || targeted > 1_000_000 {
			return
		}
		mu, ms := intstr.Parse(unavailable), intstr.Parse(surge)
		ds := fixture.DaemonSet("fuzz", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
			if rolling {
				ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &mu, MaxSurge: &ms}}
			}
		})
		got, err := MaxUnavailable(ds, targeted)

		want, wantSurge := 0, 0
		var oracleErr error
		if rolling {
			var surgeErr error
			want, oracleErr = intstr.GetScaledValueFromIntOrPercent(&mu, targeted, true)
			wantSurge, surgeErr = intstr.GetScaledValueFromIntOrPercent(&ms, targeted, true)
			oracleErr = errors.Join(oracleErr, surgeErr)
			if want < 0 || wantSurge < 0 {
				oracleErr = errors.Join(oracleErr, errors.New("negative"))
			}
		}
		if targeted > 0 && want == 0 && wantSurge == 0 {
			want = 1
		}
		switch {
		case (err != nil) != (oracleErr != nil):
			t.Fatalf("MaxUnavailable(%q, %q, rolling %v, %d) = %d, %v; the oracle's error is %v", unavailable, surge, rolling, targeted, got, err, oracleErr)
		case err == nil && got != want:
			t.Fatalf("MaxUnavailable(%q, %q, rolling %v, %d) = %d, want %d", unavailable, surge, rolling, targeted, got, want)
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
