package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

func TestMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name               string
		unavailable, surge string
		targeted, want     int
		wantErr            string
	}{
		{name: "rounds a percentage up, as the controller does", unavailable: "10%", surge: "0", targeted: 15, want: 2},
		{name: "takes one pod at a time when neither is set above zero", unavailable: "0", surge: "0", targeted: 5, want: 1},
		{name: "takes none down when surging", unavailable: "0", surge: "1", targeted: 5, want: 0},
		{name: "refuses a negative count, as the API server does", unavailable: "-1", surge: "0", targeted: 100, wantErr: "resolving maxUnavailable: must not be negative"},
		{name: "refuses a negative percentage", unavailable: "1", surge: "-5%", targeted: 100, wantErr: "resolving maxSurge: must not be negative"},
		{name: "refuses a percentage that is not a number", unavailable: "x%", surge: "0", targeted: 10, wantErr: "resolving maxUnavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.Parse(tc.unavailable)), MaxSurge: ptr.To(intstr.Parse(tc.surge))}
			})
			got, err := MaxUnavailable(ds, tc.targeted)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MaxUnavailable = %d, %v; want an error containing %q", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("MaxUnavailable = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestRolloutBudgetNeverDeniesWhatAnAcceptedPolicyInjects holds the policy's
// load-time coherence check to the rule itself: for every pair of injected
// maxUnavailable and rollout budget at deny, a policy that loads never has
// its injected value denied, on DaemonSets that target 1 to 250 nodes, and a
// policy that is refused is denied at the node count its message names.
func TestRolloutBudgetNeverDeniesWhatAnAcceptedPolicyInjects(t *testing.T) {
	shares := []string{"1", "2", "3", "10", "\"1%\"", "\"10%\"", "\"25%\"", "\"33%\"", "\"50%\"", "\"99%\"", "\"100%\""}
	nodes := make([]*corev1.Node, 1100)
	for i := range nodes {
		nodes[i] = fixture.Node(fmt.Sprintf("node-%d", i), nil)
	}
	denies := func(pol *policy.Policy, n int) bool {
		in := &Input{Operation: Create, Object: fixture.DaemonSet("fluentd"), Policy: pol, Nodes: inventory.New(nodes[:n]...)}
		if _, errs := Builtin().Mutate(in); errs != nil {
			t.Fatal(errs)
		}
		findings, _ := Builtin().Validate(in)
		return slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == RolloutBudget && f.Action == policy.Deny })
	}
	for _, injected := range shares {
		for _, budget := range shares {
			doc := fmt.Sprintf("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules:\n  rolling-update-defaults: {maxUnavailable: %s}\n  rollout-budget: {action: deny, maxUnavailable: %s}\n", injected, budget)
			p, err := policy.Parse([]byte(doc), Builtin())
			if err == nil {
				for n := 1; n <= 250; n++ {
					if denies(p, n) {
						t.Errorf("injected %s, budget %s: the policy loads, but rollout-budget denies its injected value at %d nodes", injected, budget, n)
					}
				}
				continue
			}
			var n int
			if _, scanErr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "targets "):], "targets %d nodes", &n); scanErr != nil || n > len(nodes) {
				t.Fatalf("injected %s, budget %s: %v", injected, budget, err)
			}
			pol := policy.Default(Builtin())
			pol.Rules[RolloutBudget].Action = policy.Deny
			policy.OptionsOf[*RolloutBudgetOptions](pol, RolloutBudget).MaxUnavailable = intstr.Parse(strings.Trim(budget, `"`))
			policy.OptionsOf[*RollingUpdateDefaultsOptions](pol, RollingUpdateDefaults).MaxUnavailable = ptr.To(intstr.Parse(strings.Trim(injected, `"`)))
			if !denies(pol, n) || (n > 1 && denies(pol, n-1)) {
				t.Errorf("injected %s, budget %s: refused (%v), but %d nodes is not the first count rollout-budget denies", injected, budget, err, n)
			}
		}
	}
}
