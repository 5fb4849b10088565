package policy

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestParseReadsTheExamplePolicy(t *testing.T) {
	p, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Mutation.Tolerations; len(got) != 1 || got[0].Key != "node-role.kubernetes.io/control-plane" || got[0].Operator != corev1.TolerationOpExists {
		t.Errorf("tolerations = %+v", got)
	}
	if got := p.Mutation.RollingUpdate.MaxUnavailable; got == nil || *got != intstr.FromString("10%") {
		t.Errorf("maxUnavailable = %v, want 10%%", got)
	}
	if got := p.Action(TargetsNodes); got != Deny {
		t.Errorf("targets-nodes action = %q, want deny", got)
	}
	if got := p.Action(SelectorImmutable); got != Deny {
		t.Errorf("selector-immutable keeps its default: got %q, want deny", got)
	}
	if !p.Exempt("monitoring", TargetsNodes) || p.Exempt("monitoring", RolloutBudget) || p.Exempt("logging", TargetsNodes) {
		t.Error("exemptions apply to the wrong namespaces or rules")
	}
}

func TestDefaultPolicyIsValidAndInjectsNothing(t *testing.T) {
	p := Default()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("the built-in policy is invalid: %v", errs)
	}
	if len(p.Mutation.Tolerations) > 0 || p.Mutation.RollingUpdate.MaxUnavailable != nil || p.Mutation.RollingUpdate.MinReadySeconds != nil {
		t.Errorf("the built-in policy injects something: %+v", p.Mutation)
	}
	parsed, err := Parse([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Action(TargetsNodes) != Warn || parsed.Action(RolloutBudget) != Warn || parsed.Action(RestartPolicyAlways) != Deny || parsed.Action(DefaultTolerations) != Apply {
		t.Errorf("an empty policy file does not get the built-in actions: %+v", parsed.Rules)
	}
}

func TestParseRejectsBrokenPolicies(t *testing.T) {
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	tests := []struct {
		name, doc, want string
	}{
		{"rejects an unknown field, naming it", header + "mutation:\n  tolerationz: []\n", `unknown field "mutation.tolerationz"`},
		{"rejects an unknown rule, naming it", header + "rules:\n  targets-node: {action: warn}\n", `unknown field "rules.targets-node"`},
		{"rejects a wrong kind", "apiVersion: daemonset-guard.io/v1alpha1\nkind: Config\n", `kind: Unsupported value: "Config"`},
		{"rejects a missing apiVersion", "kind: Policy\n", `apiVersion: Unsupported value: ""`},
		{"rejects an unknown action with the rule's path", header + "rules:\n  targets-nodes: {action: block}\n", `rules.targets-nodes.action: Unsupported value: "block"`},
		{"rejects deny on a mutation rule", header + "rules:\n  default-tolerations: {action: deny}\n", `rules.default-tolerations.action: Unsupported value: "deny"`},
		{"rejects a percentage over 100", header + "mutation:\n  rollingUpdate: {maxUnavailable: \"150%\"}\n", "mutation.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"},
		{"rejects a maxUnavailable of zero", header + "mutation:\n  rollingUpdate: {maxUnavailable: 0}\n", "mutation.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"},
		{"rejects a maxUnavailable that is not a number", header + "rules:\n  rollout-budget: {maxUnavailable: half}\n", `rules.rollout-budget.maxUnavailable: Invalid value: "half"`},
		{"rejects a negative minReadySeconds", header + "mutation:\n  rollingUpdate: {minReadySeconds: -1}\n", "mutation.rollingUpdate.minReadySeconds: Invalid value: -1"},
		{"rejects a toleration with a value and operator Exists", header + "mutation:\n  tolerations: [{key: a, operator: Exists, value: b}]\n", "mutation.tolerations[0].operator: Invalid value: \"b\": value must be empty when `operator` is 'Exists'"},
		{"rejects a toleration of an unknown effect", header + "mutation:\n  tolerations: [{key: a, operator: Exists, effect: NoRun}]\n", `mutation.tolerations[0].effect: Unsupported value: "NoRun"`},
		{"rejects a toleration whose key is not a label key, as the API server would", header + "mutation:\n  tolerations: [{key: 'nvidia.com/gpu!', operator: Exists}]\n", "mutation.tolerations[0].key: Invalid value: \"nvidia.com/gpu!\""},
		{"rejects a toleration whose value is not a label value", header + "mutation:\n  tolerations: [{key: dedicated, operator: Equal, value: 'gpu pool'}]\n", "mutation.tolerations[0].operator: Invalid value: \"gpu pool\""},
		{"rejects a toleration without key that is not Exists", header + "mutation:\n  tolerations: [{operator: Equal, value: x}]\n", "mutation.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty"},
		{"rejects tolerationSeconds on an effect other than NoExecute", header + "mutation:\n  tolerations: [{key: a, operator: Exists, effect: NoSchedule, tolerationSeconds: 30}]\n", "mutation.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"},
		{"rejects a comparison operator, an alpha feature the API server refuses by default", header + "mutation:\n  tolerations: [{key: a, operator: Lt, value: '5'}]\n", "mutation.tolerations[0].operator"},
		{"rejects a fractional percentage", header + "mutation:\n  rollingUpdate: {maxUnavailable: \"10.5%\"}\n", "mutation.rollingUpdate.maxUnavailable: Invalid value: \"10.5%\""},
		{"rejects a negative maxUnavailable", header + "mutation:\n  rollingUpdate: {maxUnavailable: -1}\n", "mutation.rollingUpdate.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"},
		{"rejects an unknown onError", header + "rules:\n  targets-nodes: {onError: ignore}\n", `rules.targets-nodes.onError: Unsupported value: "ignore": supported values: "allow", "deny"`},
		{"rejects a mutation that its own rollout-budget at deny would refuse, naming both fields", header + "mutation:\n  rollingUpdate: {maxUnavailable: 2}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n",
			"mutation.rollingUpdate.maxUnavailable: Invalid value: \"2\": rollout-budget, at deny, would refuse the maxUnavailable this policy injects: on a DaemonSet that targets 2 nodes it takes down 2 at a time, and rules.rollout-budget.maxUnavailable (50%) allows 1"},
		{"rejects a percentage that a count budget at deny refuses on large DaemonSets", header + "mutation:\n  rollingUpdate: {maxUnavailable: \"10%\"}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: 5}\n",
			"on a DaemonSet that targets 51 nodes it takes down 6 at a time, and rules.rollout-budget.maxUnavailable (5) allows 5"},
		{"rejects equal percentages whose rounding differs", header + "mutation:\n  rollingUpdate: {maxUnavailable: \"10%\"}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: \"10%\"}\n",
			"on a DaemonSet that targets 11 nodes it takes down 2 at a time"},
		{"rejects a toleration the DaemonSet controller adds itself", header + "mutation:\n  tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}]\n", "mutation.tolerations[0].key: Forbidden: the DaemonSet controller adds"},
		{"rejects an exemption of an unknown rule", header + "exemptions:\n- {namespaces: [a], rules: [everything]}\n", `exemptions[0].rules[0]: Unsupported value: "everything"`},
		{"rejects an exemption without namespaces", header + "exemptions:\n- {rules: [targets-nodes]}\n", "exemptions[0].namespaces: Required value"},
		{"rejects a document that is not YAML", "{{{", "decoding policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsCoherentPolicies(t *testing.T) {
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	for name, doc := range map[string]string{
		"a smaller percentage under a percentage budget at deny": "mutation:\n  rollingUpdate: {maxUnavailable: \"10%\"}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n",
		"one pod at a time under any budget at deny":             "mutation:\n  rollingUpdate: {maxUnavailable: 1}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: 1}\n",
		"a conflicting budget that only warns":                   "mutation:\n  rollingUpdate: {maxUnavailable: 2}\nrules:\n  rollout-budget: {action: warn, maxUnavailable: \"50%\"}\n",
		"a conflicting budget when the mutation is off":          "mutation:\n  rollingUpdate: {maxUnavailable: 2}\nrules:\n  rollout-budget: {action: deny, maxUnavailable: \"50%\"}\n  rolling-update-defaults: {action: off}\n",
		"every toleration shape the API server accepts": "mutation:\n  tolerations:\n  - {operator: Exists}\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n" +
			"  - {key: dedicated, value: db}\n  - {key: maintenance, operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n  - {key: spot, operator: Exists, effect: PreferNoSchedule}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(header + doc)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoadNamesAMissingFile(t *testing.T) {
	_, err := Load("testdata/missing.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/missing.yaml") || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("error = %v, want a not-exist error naming the file", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
