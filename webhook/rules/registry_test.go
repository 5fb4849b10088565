package rules

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// withRule returns the built-in catalog with the named rule changed.
func withRule(t *testing.T, name string, change func(*Rule)) *Catalog {
	t.Helper()
	rules := Builtin().Rules()
	i := slices.IndexFunc(rules, func(r Rule) bool { return r.Name == name })
	if i < 0 {
		t.Fatalf("no rule %s", name)
	}
	change(&rules[i])
	c, err := NewCatalog(rules...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectRuleFindings validates in and holds the findings of one rule, all at
// its default action warn, to want: substrings of their messages, in order.
func expectRuleFindings(t *testing.T, in *Input, rule string, want []string) {
	t.Helper()
	findings, errs := Builtin().Validate(in)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, f := range findings {
		if f.Rule != rule {
			continue
		}
		got = append(got, f.Message)
		if f.Action != policy.Warn {
			t.Errorf("finding %q is %s, want warn, the rule's default", f.Message, f.Action)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s found %q, want %d findings like %q", rule, got, len(want), want)
	}
	for i := range got {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("finding %d = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

// noLatestTag is a rule that only this test declares, as a new rule's file
// would: its name, kind, default, options and function, and nothing else.
type noLatestTagOptions struct {
	Images []string `json:"images"`
}

func (o *noLatestTagOptions) Validate(path *field.Path) field.ErrorList {
	if len(o.Images) == 0 {
		return field.ErrorList{field.Required(path.Child("images"), "name the images that must carry a tag")}
	}
	return nil
}

func noLatestTag() Rule {
	return Rule{
		Spec: policy.Spec{Name: "no-latest-tag", Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options { return &noLatestTagOptions{Images: []string{"fluentd"}} }},
		Summary:     "the listed images carry a tag other than latest",
		Description: "A test-only rule.",
		Check: infallible(func(in *Input) []Finding {
			var out []Finding
			images := policy.OptionsOf[*noLatestTagOptions](in.Policy, "no-latest-tag").Images
			for i, c := range in.Object.Spec.Template.Spec.Containers {
				if slices.Contains(images, strings.TrimSuffix(c.Image, ":latest")) {
					out = append(out, Finding{Rule: "no-latest-tag", Field: field.NewPath("spec", "template", "spec", "containers").Index(i).Child("image"), Message: "tag the image"})
				}
			}
			return out
		}),
	}
}

func TestARuleIsAddedByItsDeclarationAlone(t *testing.T) {
	catalog, err := NewCatalog(append(Builtin().Rules(), noLatestTag())...)
	if err != nil {
		t.Fatal(err)
	}
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	pol, err := policy.Parse([]byte(header+"rules:\n  no-latest-tag: {action: deny, images: [fluentd, fluent-bit]}\nexemptions:\n- {namespaces: [dev], rules: [no-latest-tag]}\n"+
		"skipAnnotation: {rules: [no-latest-tag]}\n"), catalog)
	if err != nil {
		t.Fatalf("a policy naming the new rule, its options and an exemption of it does not load: %v", err)
	}
	ds := func(namespace, skip string) *appsv1.DaemonSet {
		return fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
			ds.Namespace = namespace
			ds.Spec.Template.Spec.Containers[0].Image = "fluent-bit:latest"
			if skip != "" {
				ds.Annotations = map[string]string{SkipAnnotation: skip}
			}
		})
	}
	denials := func(ds *appsv1.DaemonSet) []string {
		findings, _ := catalog.Validate(&Input{Operation: Create, Object: ds, Policy: pol})
		var out []string
		for _, f := range findings {
			if f.Action == policy.Deny || f.Rule == "" {
				out = append(out, f.String())
			}
		}
		return out
	}
	if got := denials(ds("logging", "")); len(got) != 1 || !strings.Contains(got[0], "[no-latest-tag] spec.template.spec.containers[0].image: tag the image") {
		t.Errorf("the new rule at deny gave %q, want its one denial", got)
	}
	if got := denials(ds("dev", "")); len(got) != 0 {
		t.Errorf("the exempt namespace got %q", got)
	}
	if got := denials(ds("logging", "no-latest-tag")); len(got) != 0 {
		t.Errorf("the skip annotation naming the new rule gave %q", got)
	}
	if _, err := policy.Parse([]byte(header+"rules:\n  no-latest-tag: {images: []}\n"), catalog); err == nil || !strings.Contains(err.Error(), "rules.no-latest-tag.images: Required value") {
		t.Errorf("the new rule's own validation did not run: %v", err)
	}
	if _, err := policy.Parse([]byte(header+"rules:\n  no-latest-tag: {action: deny}\n"), Builtin()); err == nil || !strings.Contains(err.Error(), `rules.no-latest-tag: Unsupported value: "no-latest-tag"`) {
		t.Errorf("the built-in catalog accepted a rule it does not hold: %v", err)
	}
}

func TestTheSkipAnnotationWarnsOfNamesThatAreNoRule(t *testing.T) {
	tests := []struct {
		name, skip string
		want       string // a substring of the one warning; empty for none
	}{
		{"says nothing of known names", "targets-nodes, rollout-budget", ""},
		{"says nothing of *", "*", ""},
		{"says nothing of an empty entry", "targets-nodes,", ""},
		{"names a misspelt rule and lists the real ones", "targets-node", `[daemonset-guard] metadata.annotations[daemonset-guard.io/skip]: no rule is named "targets-node", so nothing was skipped for it; the rules are default-tolerations,`},
		{"names every unknown name once", "x, targets-nodes, y", `no rule is named "x", "y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := fixture.DaemonSet("fluentd", withAnnotation(SkipAnnotation, tt.skip))
			findings, _ := Builtin().Validate(&Input{Operation: Create, Object: ds, Policy: policy.Default(Builtin())})
			var said []string
			for _, f := range findings {
				if f.Rule == "" {
					said = append(said, f.String())
					if f.Action != policy.Warn {
						t.Errorf("the skip annotation's finding is %s, but it must never deny", f.Action)
					}
				}
			}
			switch {
			case tt.want == "" && len(said) > 0:
				t.Errorf("warned %q", said)
			case tt.want != "" && (len(said) != 1 || !strings.Contains(said[0], tt.want)):
				t.Errorf("warned %q, want one warning containing %q", said, tt.want)
			}
		})
	}
}

func TestNewCatalogRefusesDeclarationsTheEngineCannotRun(t *testing.T) {
	valid := noLatestTag()
	tests := []struct {
		name   string
		change func(*Rule)
		want   string
	}{
		{"refuses a rule without a name", func(r *Rule) { r.Name = "" }, "has no name"},
		{"refuses a rule without a description", func(r *Rule) { r.Description = "" }, "needs a summary and a description"},
		{"refuses a validating rule whose default is apply", func(r *Rule) { r.Default = policy.Apply }, `default action "apply" is not one a validating rule takes`},
		{"refuses a validating rule that is off by default", func(r *Rule) { r.Default = policy.Off }, `default action "off"`},
		{"refuses a validating rule without its function", func(r *Rule) { r.Check = nil }, "a validating rule has a Check"},
		{"refuses a mutating rule without the fields it changes", func(r *Rule) {
			r.Kind, r.Default, r.Check, r.Apply = policy.Mutating, policy.Apply, nil, func(*Input) bool { return false }
		}, "a mutating rule has Apply and Fields"},
		{"refuses an unknown kind", func(r *Rule) { r.Kind = "auditing" }, `unknown kind "auditing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid
			tt.change(&r)
			if _, err := NewCatalog(r); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("refuses a name declared twice", func(t *testing.T) {
		if _, err := NewCatalog(valid, valid); err == nil || !strings.Contains(err.Error(), `rule "no-latest-tag" is declared twice`) {
			t.Errorf("error = %v", err)
		}
	})
}

// TestTheREADMEDescribesEveryRule holds the README's rule table and its
// sections to the catalog: a rule added, renamed or removed without its
// README section fails here.
func TestTheREADMEDescribesEveryRule(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (\\w+) \\| (\\w+) \\| (.+) \\|$")
	var rows [][]string
	for _, m := range row.FindAllStringSubmatch(readme, -1) {
		rows = append(rows, m[1:])
	}
	var want [][]string
	for _, r := range Builtin().Rules() {
		want = append(want, []string{r.Name, string(r.Kind), string(r.Default), r.Summary})
		if !strings.Contains(readme, "\n### "+r.Name+"\n") {
			t.Errorf("the README has no section ### %s", r.Name)
		}
	}
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("the README's rule table (name, webhook, default, summary) is\n%q\nbut the catalog says\n%q", rows, want)
	}
}

// TestTheREADMEPolicyLoads parses the README's annotated policy, which names
// every rule and option, as the webhook would load it.
func TestTheREADMEPolicyLoads(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```yaml\n(apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n.*?)```").FindStringSubmatch(string(data))
	if block == nil {
		t.Fatal("the README has no annotated policy")
	}
	p, err := policy.Parse([]byte(block[1]), Builtin())
	if err != nil {
		t.Fatalf("the README's policy does not load: %v", err)
	}
	for _, r := range Builtin().Rules() {
		if !strings.Contains(block[1], "\n  "+r.Name+":") {
			t.Errorf("the README's policy does not show rule %s", r.Name)
		}
	}
	if !p.Cluster.Runs(policy.PodNodeSelector) {
		t.Error("the README's policy shows no cluster.admissionPlugins")
	}
}
