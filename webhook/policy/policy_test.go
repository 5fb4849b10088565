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
		{"rejects a percentage over 100", header + "mutation:\n  rollingUpdate: {maxUnavailable: \"150%\"}\n", "mutation.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must be between 1% and 100%"},
		{"rejects a maxUnavailable of zero", header + "mutation:\n  rollingUpdate: {maxUnavailable: 0}\n", "mutation.rollingUpdate.maxUnavailable: Invalid value: 0: must be at least 1"},
		{"rejects a maxUnavailable that is not a number", header + "rules:\n  rollout-budget: {maxUnavailable: half}\n", `rules.rollout-budget.maxUnavailable: Invalid value: "half"`},
		{"rejects a negative minReadySeconds", header + "mutation:\n  rollingUpdate: {minReadySeconds: -1}\n", "mutation.rollingUpdate.minReadySeconds: Invalid value: -1"},
		{"rejects a toleration with a value and operator Exists", header + "mutation:\n  tolerations: [{key: a, operator: Exists, value: b}]\n", "mutation.tolerations[0].value: Invalid value: \"b\""},
		{"rejects a toleration of an unknown effect", header + "mutation:\n  tolerations: [{key: a, operator: Exists, effect: NoRun}]\n", `mutation.tolerations[0].effect: Unsupported value: "NoRun"`},
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
