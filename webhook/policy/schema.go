package policy

import (
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Schema returns the JSON Schema (draft 7) of a policy file of the catalog:
// its rules by name, each rule's actions and the fields of its options. It
// is what editors and the Helm chart's values.schema.json check a policy
// with before it reaches the webhook, so it refuses what Parse would refuse
// for its shape (unknown rules, fields and actions, wrong types); what only a
// rule's Validate knows (a percentage out of range, an invalid label key) is
// still Parse's to refuse.
func Schema(c Catalog) map[string]any {
	rules := map[string]any{}
	for _, s := range c.Specs() {
		properties := map[string]any{
			"action":  map[string]any{"enum": s.Kind.Actions()},
			"onError": map[string]any{"enum": []OnError{OnErrorAllow, OnErrorDeny}},
		}
		if s.Options != nil {
			for name, schema := range schemaOf(reflect.TypeOf(s.Options()))["properties"].(map[string]any) {
				properties[name] = schema
			}
		}
		rules[s.Name] = map[string]any{"type": "object", "properties": properties, "additionalProperties": false}
	}
	document := schemaOf(reflect.TypeFor[document]())
	properties := document["properties"].(map[string]any)
	delete(properties, "mutation")
	properties["apiVersion"] = map[string]any{"const": APIVersion}
	properties["kind"] = map[string]any{"const": Kind}
	properties["rules"] = map[string]any{"type": "object", "properties": rules, "additionalProperties": false}
	names := names(c)
	itemsOf(properties, "cluster", "admissionPlugins")["enum"] = []string{PodNodeSelector, PodTolerationRestriction}
	itemsOf(properties, "skipAnnotation", "rules")["enum"] = append([]string{"*"}, names...)
	exemption := properties["exemptions"].(map[string]any)["items"].(map[string]any)
	exemption["required"] = []string{"namespaces", "rules"}
	itemsOf(exemption["properties"].(map[string]any), "rules")["enum"] = names
	document["$schema"] = "http://json-schema.org/draft-07/schema#"
	document["required"] = []string{"apiVersion", "kind"}
	return document
}

// itemsOf returns the schema of the items of the array at path in
// properties.
func itemsOf(properties map[string]any, path ...string) map[string]any {
	schema := map[string]any{"properties": properties}
	for _, name := range path {
		schema = schema["properties"].(map[string]any)[name].(map[string]any)
	}
	return schema["items"].(map[string]any)
}

// schemaOf describes the JSON form of a Go type: structs by their json
// tags, closed to other fields as the strict decoder is.
func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types with a JSON form of their own, as the API's types are written.
	switch t {
	case reflect.TypeFor[intstr.IntOrString]():
		return map[string]any{"type": []string{"integer", "string"}}
	case reflect.TypeFor[metav1.Duration]():
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		properties := map[string]any{}
		addFields(t, properties)
		return map[string]any{"type": "object", "properties": properties, "additionalProperties": false}
	}
	return map[string]any{}
}

// addFields adds the JSON fields of struct t, including those of embedded
// and inlined structs, to properties.
func addFields(t reflect.Type, properties map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" || strings.Contains(opts, "inline") {
			addFields(f.Type, properties)
			continue
		}
		if name == "" {
			name = f.Name
		}
		properties[name] = schemaOf(f.Type)
	}
}
