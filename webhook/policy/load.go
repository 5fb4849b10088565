package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Default returns the built-in policy of the catalog, used when no file is
// given: every rule at its default action with its default options.
func Default(c Catalog) *Policy {
	p := &Policy{APIVersion: APIVersion, Kind: Kind}
	p.setDefaults(c)
	return p
}

// setDefaults gives every rule of the catalog that the policy does not
// configure its default action, onError and options.
func (p *Policy) setDefaults(c Catalog) {
	if p.Rules == nil {
		p.Rules = map[string]*RuleConfig{}
	}
	for _, s := range c.Specs() {
		cfg := p.Rules[s.Name]
		if cfg == nil {
			cfg = &RuleConfig{}
			p.Rules[s.Name] = cfg
		}
		if cfg.Action == "" {
			cfg.Action = s.Default
		}
		if cfg.OnError == "" {
			cfg.OnError = OnErrorAllow
		}
		if cfg.Options == nil && s.Options != nil {
			cfg.Options = s.Options()
		}
	}
}

// Load reads, defaults and validates the policy file at path.
func Load(path string, c Catalog) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy file: %w", err)
	}
	p, err := Parse(data, c)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// document is the policy file as decoded before the catalog gives each
// rule's entry its type.
type document struct {
	APIVersion     string                     `json:"apiVersion"`
	Kind           string                     `json:"kind"`
	Rules          map[string]json.RawMessage `json:"rules"`
	Exemptions     []Exemption                `json:"exemptions,omitempty"`
	SkipAnnotation *SkipAnnotation            `json:"skipAnnotation,omitempty"`
	Cluster        Cluster                    `json:"cluster,omitzero"`
	// Mutation is where v1alpha1 policies before the rule registry held
	// what the mutation rules inject; it is refused with where each field
	// went.
	Mutation json.RawMessage `json:"mutation,omitempty"`
}

// Parse decodes a policy document strictly (unknown fields and unknown rules
// are errors, with their paths), applies the catalog's defaults and
// validates the result.
func Parse(data []byte, c Catalog) (*Policy, error) {
	raw, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	var doc document
	if err := strictUnmarshal(raw, &doc, ""); err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	if doc.Mutation != nil {
		return nil, errors.New("decoding policy: mutation: the injected defaults moved to the rules that inject them: " +
			"mutation.tolerations is now rules.default-tolerations.tolerations, and mutation.rollingUpdate.maxUnavailable and " +
			"minReadySeconds are now rules.rolling-update-defaults.maxUnavailable and minReadySeconds")
	}
	p := &Policy{APIVersion: doc.APIVersion, Kind: doc.Kind, Exemptions: doc.Exemptions, SkipAnnotation: doc.SkipAnnotation, Cluster: doc.Cluster, Rules: map[string]*RuleConfig{}}
	specs := c.Specs()
	for _, name := range slices.Sorted(maps.Keys(doc.Rules)) {
		i := slices.IndexFunc(specs, func(s Spec) bool { return s.Name == name })
		if i < 0 {
			// Kept undecoded, for Validate to refuse with the others.
			p.Rules[name] = &RuleConfig{}
			continue
		}
		cfg, err := decodeRule(specs[i], doc.Rules[name], "rules."+name)
		if err != nil {
			return nil, fmt.Errorf("decoding policy: %w", err)
		}
		p.Rules[name] = cfg
	}
	p.setDefaults(c)
	if errs := p.Validate(c); len(errs) > 0 {
		return nil, fmt.Errorf("invalid policy: %w", errs.ToAggregate())
	}
	return p, nil
}

// decodeRule decodes one rule's entry: action and onError, and the rest of
// its fields, strictly, as the rule's options.
func decodeRule(s Spec, raw json.RawMessage, path string) (*RuleConfig, error) {
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(raw, &fields, path); err != nil {
		return nil, err
	}
	cfg := &RuleConfig{}
	for key, dst := range map[string]any{"action": &cfg.Action, "onError": &cfg.OnError} {
		if v, ok := fields[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", path, key, err)
			}
			delete(fields, key)
		}
	}
	if s.Options == nil {
		if len(fields) > 0 {
			return nil, fmt.Errorf("unknown field %q: the rule has no options", path+"."+slices.Min(slices.Collect(maps.Keys(fields))))
		}
		return cfg, nil
	}
	cfg.Options = s.Options()
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if err := strictUnmarshal(rest, cfg.Options, path); err != nil {
		return nil, err
	}
	return cfg, nil
}

// strictUnmarshal decodes data into v refusing unknown and duplicate fields,
// whose errors name the full path from prefix, as the API server's do.
func strictUnmarshal(data []byte, v any, prefix string) error {
	strict, err := kjson.UnmarshalStrict(data, v, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		if prefix != "" {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		return err
	}
	if len(strict) == 0 {
		return nil
	}
	errs := make([]error, len(strict))
	for i, e := range strict {
		errs[i] = e
		if prefix != "" {
			// sigs.k8s.io/json quotes the path it names: put the prefix inside.
			errs[i] = errors.New(strings.Replace(e.Error(), `field "`, `field "`+prefix+".", 1))
		}
	}
	return errors.Join(errs...)
}

// Validate returns every invalid field of a defaulted policy with its path.
func (p *Policy) Validate(c Catalog) field.ErrorList {
	var errs field.ErrorList
	if p.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), p.APIVersion, []string{APIVersion}))
	}
	if p.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), p.Kind, []string{Kind}))
	}
	rules := field.NewPath("rules")
	specs, names := c.Specs(), names(c)
	for _, s := range specs {
		path := rules.Child(s.Name)
		cfg := p.Rules[s.Name]
		if cfg == nil {
			errs = append(errs, field.Required(path, "every rule of the catalog must be configured; Parse and Default configure them"))
			continue
		}
		errs = append(errs, oneOf(path.Child("action"), cfg.Action, s.Kind.Actions()...)...)
		errs = append(errs, oneOf(path.Child("onError"), cfg.OnError, OnErrorAllow, OnErrorDeny)...)
		if cfg.Options != nil {
			errs = append(errs, cfg.Options.Validate(path)...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Rules)) {
		if !slices.Contains(names, name) {
			errs = append(errs, field.NotSupported(rules.Child(name), name, names))
		}
	}
	if len(errs) == 0 {
		for _, s := range specs {
			if s.Coherent != nil {
				errs = append(errs, s.Coherent(p)...)
			}
		}
	}
	if s := p.SkipAnnotation; s != nil {
		for i, r := range s.Rules {
			if r != "*" && !slices.Contains(names, r) {
				errs = append(errs, field.NotSupported(field.NewPath("skipAnnotation", "rules").Index(i), r, append([]string{"*"}, names...)))
			}
		}
	}
	for i, plugin := range p.Cluster.AdmissionPlugins {
		errs = append(errs, oneOf(field.NewPath("cluster", "admissionPlugins").Index(i), plugin, PodNodeSelector, PodTolerationRestriction)...)
	}
	for i, e := range p.Exemptions {
		path := field.NewPath("exemptions").Index(i)
		if len(e.Namespaces) == 0 {
			errs = append(errs, field.Required(path.Child("namespaces"), "list the namespaces the exemption applies to"))
		}
		if len(e.Rules) == 0 {
			errs = append(errs, field.Required(path.Child("rules"), "list the rules the namespaces are exempt from"))
		}
		for j, r := range e.Rules {
			if !slices.Contains(names, r) {
				errs = append(errs, field.NotSupported(path.Child("rules").Index(j), r, names))
			}
		}
	}
	return errs
}

func oneOf[T ~string](path *field.Path, v T, allowed ...T) field.ErrorList {
	if slices.Contains(allowed, v) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, v, allowed)}
}

// names returns the names of the catalog's rules, in its order.
func names(c Catalog) []string {
	var out []string
	for _, s := range c.Specs() {
		out = append(out, s.Name)
	}
	return out
}
