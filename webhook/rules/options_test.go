package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

func TestParseReadsTheExamplePolicy(t *testing.T) {
	p, err := policy.Load("../policy/testdata/example.yaml", Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if got := policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations).Tolerations; len(got) != 1 || got[0].Key != "node-role.kubernetes.io/control-plane" || got[0].Operator != corev1.TolerationOpExists {
		t.Errorf("tolerations = %+v", got)
	}
	if got := policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults).MaxUnavailable; got == nil || *got != intstr.FromString("10%") {
		t.Errorf("maxUnavailable = %v, want 10%%", got)
	}
	if got := policy.OptionsOf[*StableLabelsOptions](p, SelectorStableLabels).UnstableLabels; strings.Join(got, ",") != "helm.sh/chart,version" {
		t.Errorf("unstableLabels = %v, want the file's", got)
	}
	if got := p.Action(TargetsNodes); got != policy.Deny {
		t.Errorf("targets-nodes action = %q, want deny", got)
	}
	if got := p.Action(SelectorImmutable); got != policy.Deny {
		t.Errorf("selector-immutable keeps its default: got %q, want deny", got)
	}
	if !p.Exempt("monitoring", TargetsNodes) || p.Exempt("monitoring", RolloutBudget) || p.Exempt("logging", TargetsNodes) {
		t.Error("exemptions apply to the wrong namespaces or rules")
	}
}

func TestTheBuiltinPolicyIsValidAndInjectsNothing(t *testing.T) {
	p := policy.Default(Builtin())
	if errs := p.Validate(Builtin()); len(errs) > 0 {
		t.Fatalf("the built-in policy is invalid: %v", errs)
	}
	if o := policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations); len(o.Tolerations) > 0 {
		t.Errorf("the built-in policy injects tolerations: %+v", o)
	}
	if o := policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults); o.MaxUnavailable != nil || o.MinReadySeconds != nil {
		t.Errorf("the built-in policy injects rollout settings: %+v", o)
	}
	parsed, err := policy.Parse([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Builtin().Rules() {
		if got := parsed.Action(r.Name); got != r.Default {
			t.Errorf("an empty policy file gives %s the action %s, not its declared default %s", r.Name, got, r.Default)
		}
	}
	if got := policy.OptionsOf[*RolloutBudgetOptions](parsed, RolloutBudget).MaxUnavailable; got != intstr.FromString("50%") {
		t.Errorf("rollout-budget's default budget is %s, want 50%%", got.String())
	}
}

func TestParseRefusesInvalidRuleOptions(t *testing.T) {
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	tests := []struct {
		name, doc, want string
	}{
		{"rejects an unknown field, naming it", header + "rules:\n  default-tolerations: {tolerationz: []}\n", `unknown field "rules.default-tolerations.tolerationz"`},
		{"rejects a percentage over 100", header + "rules:\n  rolling-update-defaults: {maxUnavailable: \"150%\"}\n", "rules.rolling-update-defaults.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"},
		{"rejects a maxUnavailable of zero", header + "rules:\n  rolling-update-defaults: {maxUnavailable: 0}\n", "rules.rolling-update-defaults.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"},
		{"rejects a negative minReadySeconds", header + "rules:\n  rolling-update-defaults: {minReadySeconds: -1}\n", "rules.rolling-update-defaults.minReadySeconds: Invalid value: -1"},
		{"rejects a toleration with a value and operator Exists", header + "rules:\n  default-tolerations: {tolerations: [{key: a, operator: Exists, value: b}]}\n", "rules.default-tolerations.tolerations[0].operator: Invalid value: \"b\": value must be empty when `operator` is 'Exists'"},
		{"rejects a toleration of an unknown effect", header + "rules:\n  default-tolerations: {tolerations: [{key: a, operator: Exists, effect: NoRun}]}\n", `rules.default-tolerations.tolerations[0].effect: Unsupported value: "NoRun"`},
		{"rejects a toleration whose key is not a label key, as the API server would", header + "rules:\n  default-tolerations: {tolerations: [{key: 'nvidia.com/gpu!', operator: Exists}]}\n", "rules.default-tolerations.tolerations[0].key: Invalid value: \"nvidia.com/gpu!\""},
		{"rejects a toleration whose value is not a label value", header + "rules:\n  default-tolerations: {tolerations: [{key: dedicated, operator: Equal, value: 'gpu pool'}]}\n", "rules.default-tolerations.tolerations[0].operator: Invalid value: \"gpu pool\""},
		{"rejects a toleration without key that is not Exists", header + "rules:\n  default-tolerations: {tolerations: [{operator: Equal, value: x}]}\n", "rules.default-tolerations.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty"},
		{"rejects tolerationSeconds on an effect other than NoExecute", header + "rules:\n  default-tolerations: {tolerations: [{key: a, operator: Exists, effect: NoSchedule, tolerationSeconds: 30}]}\n", "rules.default-tolerations.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"},
		{"rejects a comparison operator, an alpha feature the API server refuses by default", header + "rules:\n  default-tolerations: {tolerations: [{key: a, operator: Lt, value: '5'}]}\n", "rules.default-tolerations.tolerations[0].operator"},
		{"rejects a fractional percentage", header + "rules:\n  rolling-update-defaults: {maxUnavailable: \"10.5%\"}\n", "rules.rolling-update-defaults.maxUnavailable: Invalid value: \"10.5%\""},
		{"rejects a negative maxUnavailable", header + "rules:\n  rolling-update-defaults: {maxUnavailable: -1}\n", "rules.rolling-update-defaults.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"},
		{"rejects a mutation that its own rollout-budget at deny would refuse, naming both fields", header + "rules:\n  rolling-update-defaults: {maxUnavailable: 2}\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n",
			"rules.rolling-update-defaults.maxUnavailable: Invalid value: \"2\": rollout-budget, at deny, would refuse the maxUnavailable this policy injects: on a DaemonSet that targets 2 nodes it takes down 2 at a time, and rules.rollout-budget.maxUnavailable (50%) allows 1"},
		{"rejects a percentage that a count budget at deny refuses on large DaemonSets", header + "rules:\n  rolling-update-defaults: {maxUnavailable: \"10%\"}\n  rollout-budget: {action: deny, maxUnavailable: 5}\n",
			"on a DaemonSet that targets 51 nodes it takes down 6 at a time, and rules.rollout-budget.maxUnavailable (5) allows 5"},
		{"rejects equal percentages whose rounding differs", header + "rules:\n  rolling-update-defaults: {maxUnavailable: \"10%\"}\n  rollout-budget: {action: deny, maxUnavailable: \"10%\"}\n",
			"on a DaemonSet that targets 11 nodes it takes down 2 at a time"},
		{"rejects a toleration the DaemonSet controller adds itself", header + "rules:\n  default-tolerations: {tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}]}\n", "rules.default-tolerations.tolerations[0].key: Forbidden: the DaemonSet controller adds"},
		{"rejects an unstable label that is not a label key", header + "rules:\n  selector-stable-labels: {unstableLabels: [\"helm.sh/chart version\"]}\n", `rules.selector-stable-labels.unstableLabels[0]: Invalid value: "helm.sh/chart version"`},
		{"rejects a shrinkEvent that is not a percentage", header + "rules:\n  targets-nodes: {shrinkEvent: 3}\n", `rules.targets-nodes.shrinkEvent: Invalid value: "3": must be a percentage from 1% to 100%`},
		{"rejects a shrinkEvent of 0%", header + "rules:\n  targets-nodes: {shrinkEvent: \"0%\"}\n", `rules.targets-nodes.shrinkEvent: Invalid value: "0%"`},
		{"rejects a priority-class without a minimum", header + "rules:\n  priority-class: {minimum: \"\"}\n", "rules.priority-class.minimum: Required value"},
		{"rejects an option of a rule that has none", header + "rules:\n  restart-policy-always: {action: deny, unstableLabels: []}\n", `unknown field "rules.restart-policy-always.unstableLabels": the rule has no options`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(tt.doc), Builtin())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsCoherentPolicies(t *testing.T) {
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	for name, doc := range map[string]string{
		"a smaller percentage under a percentage budget at deny": "rules:\n  rolling-update-defaults: {maxUnavailable: \"10%\"}\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n",
		"one pod at a time under any budget at deny":             "rules:\n  rolling-update-defaults: {maxUnavailable: 1}\n  rollout-budget: {action: deny, maxUnavailable: 1}\n",
		"a conflicting budget that only warns":                   "rules:\n  rolling-update-defaults: {maxUnavailable: 2}\n  rollout-budget: {action: warn, maxUnavailable: \"50%\"}\n",
		"a conflicting budget when the mutation is off":          "rules:\n  rolling-update-defaults: {action: off, maxUnavailable: 2}\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n",
		"every toleration shape the API server accepts": "rules:\n  default-tolerations:\n    tolerations:\n    - {operator: Exists}\n    - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n" +
			"    - {key: dedicated, value: db}\n    - {key: maintenance, operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n    - {key: spot, operator: Exists, effect: PreferNoSchedule}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := policy.Parse([]byte(header+doc), Builtin()); err != nil {
				t.Error(err)
			}
		})
	}
}
