package policy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// limitOptions are the options of the test catalog's validating rule.
type limitOptions struct {
	Limit int `json:"limit"`
}

func (o *limitOptions) Validate(path *field.Path) field.ErrorList {
	if o.Limit < 1 {
		return field.ErrorList{field.Invalid(path.Child("limit"), o.Limit, "must be at least 1")}
	}
	return nil
}

// specs is a catalog of two rules that exist only in these tests: the
// package knows no rule by name.
type specs []Spec

func (s specs) Specs() []Spec { return s }

func testCatalog() specs {
	return specs{
		{Name: "check-a", Kind: Validating, Default: Warn, Options: func() Options { return &limitOptions{Limit: 3} },
			Coherent: func(p *Policy) field.ErrorList {
				if p.Action("check-a") == Deny && p.Action("mutate-b") == Apply && OptionsOf[*limitOptions](p, "check-a").Limit == 1 {
					return field.ErrorList{field.Invalid(field.NewPath("rules", "check-a", "limit"), 1, "contradicts mutate-b")}
				}
				return nil
			}},
		{Name: "mutate-b", Kind: Mutating, Default: Apply},
	}
}

const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"

func TestParseConfiguresEveryRuleOfTheCatalog(t *testing.T) {
	p, err := Parse([]byte(header+"rules:\n  check-a: {action: deny, onError: deny, limit: 5}\nexemptions:\n- {namespaces: [dev], rules: [mutate-b]}\n"), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if p.Action("check-a") != Deny || p.OnError("check-a") != OnErrorDeny || OptionsOf[*limitOptions](p, "check-a").Limit != 5 {
		t.Errorf("check-a is not configured as the file says: %+v", p.Rules["check-a"])
	}
	if p.Action("mutate-b") != Apply || p.OnError("mutate-b") != OnErrorAllow || p.Rules["mutate-b"].Options != nil {
		t.Errorf("mutate-b does not keep its defaults: %+v", p.Rules["mutate-b"])
	}
	if !p.Exempt("dev", "mutate-b") || p.Exempt("dev", "check-a") || p.Exempt("prod", "mutate-b") {
		t.Error("exemptions apply to the wrong namespaces or rules")
	}
	if p.Action("no-such-rule") != Off || OptionsOf[*limitOptions](p, "mutate-b") != nil {
		t.Error("a rule the policy does not know, or options of another type, must read as nothing")
	}
	if d := Default(testCatalog()); d.Action("check-a") != Warn || OptionsOf[*limitOptions](d, "check-a").Limit != 3 || len(d.Validate(testCatalog())) > 0 {
		t.Errorf("the default policy does not hold the declared defaults: %+v", d.Rules["check-a"])
	}
}

func TestParseRejectsBrokenPolicies(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"rejects a rule the catalog does not hold, listing those it does", header + "rules:\n  check-b: {action: warn}\n", `rules.check-b: Unsupported value: "check-b": supported values: "check-a", "mutate-b"`},
		{"rejects an unknown option with its full path", header + "rules:\n  check-a: {limt: 2}\n", `unknown field "rules.check-a.limt"`},
		{"rejects an option of a rule that has none", header + "rules:\n  mutate-b: {limit: 2}\n", `unknown field "rules.mutate-b.limit": the rule has no options`},
		{"rejects an unknown top-level field", header + "rulez: {}\n", `unknown field "rulez"`},
		{"rejects a field given twice", `{"apiVersion": "daemonset-guard.io/v1alpha1", "kind": "Policy", "rules": {"check-a": {"limit": 2, "limit": 3}}}`, `"limit" already set in map`},
		{"rejects a wrong kind", "apiVersion: daemonset-guard.io/v1alpha1\nkind: Config\n", `kind: Unsupported value: "Config"`},
		{"rejects a missing apiVersion", "kind: Policy\n", `apiVersion: Unsupported value: ""`},
		{"rejects an unknown action with the rule's path", header + "rules:\n  check-a: {action: block}\n", `rules.check-a.action: Unsupported value: "block"`},
		{"rejects deny on a mutation rule", header + "rules:\n  mutate-b: {action: deny}\n", `rules.mutate-b.action: Unsupported value: "deny": supported values: "apply", "off"`},
		{"rejects an action that is not a string", header + "rules:\n  check-a: {action: [deny]}\n", "rules.check-a.action: an action must be one of deny, warn, apply or off"},
		{"rejects an unknown onError", header + "rules:\n  check-a: {onError: ignore}\n", `rules.check-a.onError: Unsupported value: "ignore": supported values: "allow", "deny"`},
		{"runs the rule's own validation with its path", header + "rules:\n  check-a: {limit: 0}\n", "rules.check-a.limit: Invalid value: 0: must be at least 1"},
		{"runs the rule's coherence check", header + "rules:\n  check-a: {action: deny, limit: 1}\n", "rules.check-a.limit: Invalid value: 1: contradicts mutate-b"},
		{"rejects an exemption of an unknown rule", header + "exemptions:\n- {namespaces: [a], rules: [everything]}\n", `exemptions[0].rules[0]: Unsupported value: "everything"`},
		{"rejects an exemption without namespaces", header + "exemptions:\n- {rules: [check-a]}\n", "exemptions[0].namespaces: Required value"},
		{"rejects a skippable rule the catalog does not hold", header + "skipAnnotation: {rules: [check-b]}\n", `skipAnnotation.rules[0]: Unsupported value: "check-b": supported values: "*", "check-a", "mutate-b"`},
		{"rejects an exemption without rules", header + "exemptions:\n- {namespaces: [a]}\n", "exemptions[0].rules: Required value"},
		{"rejects the mutation section of older policies, saying where its fields went", header + "mutation:\n  tolerations: []\n", "mutation.tolerations is now rules.default-tolerations.tolerations"},
		{"rejects a document that is not YAML", "{{{", "decoding policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), testCatalog())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseReportsAnUnknownRuleBesideTheOtherInvalidFields(t *testing.T) {
	_, err := Parse([]byte(header+"rules:\n  check-b: {action: warn}\n  check-a: {action: block}\n"), testCatalog())
	for _, want := range []string{`rules.check-b: Unsupported value: "check-b"`, `rules.check-a.action: Unsupported value: "block"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
}

func TestOnlyRulesNotAtDenyAreSkippableUnlessThePolicyListsThem(t *testing.T) {
	for _, tt := range []struct {
		name, doc       string
		checkA, mutateB bool
	}{
		{"skips a rule at warn and a mutation by default", "", true, true},
		{"keeps a rule at deny by default", "rules: {check-a: {action: deny}}\n", false, true},
		{"skips only what the policy lists", "rules: {check-a: {action: deny}}\nskipAnnotation: {rules: [check-a]}\n", true, false},
		{"skips nothing when the list is empty", "skipAnnotation: {rules: []}\n", false, false},
		{"skips everything under *", "rules: {check-a: {action: deny}}\nskipAnnotation: {rules: ['*']}\n", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(header+tt.doc), testCatalog())
			if err != nil {
				t.Fatal(err)
			}
			if p.Skippable("check-a") != tt.checkA || p.Skippable("mutate-b") != tt.mutateB {
				t.Errorf("skippable: check-a %v, mutate-b %v; want %v, %v", p.Skippable("check-a"), p.Skippable("mutate-b"), tt.checkA, tt.mutateB)
			}
		})
	}
}

func TestAnUnquotedOffIsTheActionOff(t *testing.T) {
	p, err := Parse([]byte(header+"rules:\n  check-a: {action: off}\n  mutate-b: {action: off}\n"), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if p.Action("check-a") != Off || p.Action("mutate-b") != Off {
		t.Errorf("actions = %s, %s; want off", p.Action("check-a"), p.Action("mutate-b"))
	}
}

func TestARuleConfigMarshalsAsThePolicyFileWritesIt(t *testing.T) {
	p, err := Parse([]byte(header+"rules:\n  check-a: {action: deny, limit: 7}\n"), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data, testCatalog())
	if err != nil {
		t.Fatalf("the marshalled policy %s does not parse: %v", data, err)
	}
	if OptionsOf[*limitOptions](again, "check-a").Limit != 7 || again.Action("check-a") != Deny {
		t.Errorf("the round trip lost the configuration: %s", data)
	}
}

func TestLoadNamesAMissingFile(t *testing.T) {
	_, err := Load("testdata/missing.yaml", testCatalog())
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
