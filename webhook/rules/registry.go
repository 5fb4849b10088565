package rules

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// Rule declares everything about one rule, in the rule's own file: the
// policy's view of it (name, kind, default action, options), its words and
// its function. Policy loading, exemptions, the skip annotation, metrics,
// check and audit, `daemonset-guard rules` and the README's rule table all
// read it from the Catalog.
type Rule struct {
	policy.Spec
	// Summary says in one line what the rule checks or changes.
	Summary string
	// Description is one paragraph: what the rule finds, why it matters,
	// and how its options change it.
	Description string

	// Check is a validating rule's function: what it finds, for the engine
	// to deny, warn or ignore as the policy says.
	Check func(in *Input) ([]Finding, error)

	// Apply is a mutating rule's function: it changes in.Object in place
	// and reports whether it did.
	Apply func(in *Input) bool
	// Fields copies every field Apply may change from one DaemonSet to
	// another: the mutating webhook diffs only those (see MutableFields).
	Fields func(from, to *appsv1.DaemonSet)
	// Owned are the fields Apply sets, as managedFields paths, to name who
	// else sets them.
	Owned [][]string
}

// Catalog is a set of rules, in evaluation order. It implements
// policy.Catalog, so a policy parsed against it configures exactly its rules.
type Catalog struct {
	rules []Rule
}

// NewCatalog checks each rule's declaration and returns the catalog of them.
func NewCatalog(rules ...Rule) (*Catalog, error) {
	var errs []error
	for i, r := range rules {
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
		}
		if slices.ContainsFunc(rules[:i], func(o Rule) bool { return o.Name == r.Name }) {
			errs = append(errs, fmt.Errorf("rule %q is declared twice", r.Name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Catalog{rules: slices.Clone(rules)}, nil
}

// check refuses a declaration that the engine could not run as declared.
func (r Rule) check() error {
	switch {
	case r.Name == "":
		return errors.New("has no name")
	case r.Summary == "" || r.Description == "":
		return errors.New("needs a summary and a description")
	case !slices.Contains(r.Kind.Actions(), r.Default) || r.Default == policy.Off && r.Kind == policy.Validating:
		return fmt.Errorf("its default action %q is not one a %s rule takes", r.Default, r.Kind)
	}
	switch r.Kind {
	case policy.Validating:
		if r.Check == nil || r.Apply != nil || r.Fields != nil {
			return errors.New("a validating rule has a Check and no Apply or Fields")
		}
	case policy.Mutating:
		if r.Apply == nil || r.Fields == nil || r.Check != nil {
			return errors.New("a mutating rule has Apply and Fields and no Check")
		}
	default:
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	return nil
}

// builtin carries the built-in rules: each rule's file adds an exported
// method that returns its declaration, and Builtin collects every method,
// so that adding a rule touches no other file.
type builtin struct{}

// Builtin returns the catalog of daemonset-guard's own rules, ordered by
// name.
func Builtin() *Catalog {
	v := reflect.ValueOf(builtin{})
	rules := make([]Rule, v.NumMethod())
	for i := range rules {
		rules[i] = v.Method(i).Interface().(func() Rule)()
	}
	slices.SortFunc(rules, func(a, b Rule) int { return cmp.Compare(a.Name, b.Name) })
	c, err := NewCatalog(rules...)
	if err != nil {
		// A built-in declaration is wrong: every test that builds the
		// catalog fails on it, so no build with one ships.
		panic(err)
	}
	return c
}

// Rules returns the catalog's rules in evaluation order.
func (c *Catalog) Rules() []Rule { return slices.Clone(c.rules) }

// Rule returns the named rule.
func (c *Catalog) Rule(name string) (Rule, bool) {
	i := slices.IndexFunc(c.rules, func(r Rule) bool { return r.Name == name })
	if i < 0 {
		return Rule{}, false
	}
	return c.rules[i], true
}

// Names returns the names of the catalog's rules in evaluation order.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.rules))
	for i, r := range c.rules {
		names[i] = r.Name
	}
	return names
}

// Specs implements policy.Catalog.
func (c *Catalog) Specs() []policy.Spec {
	specs := make([]policy.Spec, len(c.rules))
	for i, r := range c.rules {
		specs[i] = r.Spec
	}
	return specs
}

// infallible adapts a rule that cannot fail (but for a panic) to the
// signature of those that can.
func infallible(check func(in *Input) []Finding) func(in *Input) ([]Finding, error) {
	return func(in *Input) ([]Finding, error) { return check(in), nil }
}
