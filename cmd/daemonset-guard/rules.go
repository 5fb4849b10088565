package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// RuleCatalog is the JSON output of rules: stable, documented in the README.
type RuleCatalog struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Rules      []RuleSummary `json:"rules"`
}

// RuleSummary is one rule of the catalogue, with what the policy makes of it.
type RuleSummary struct {
	Name string          `json:"name"`
	Kind policy.RuleKind `json:"kind"`
	// Default is the rule's action when no policy configures it.
	Default policy.Action `json:"default"`
	// Actions are the actions a policy may give it.
	Actions []policy.Action `json:"actions"`
	// Config is the rule's configuration in the policy given (the built-in
	// one without --policy-file): action, onError and options.
	Config      *policy.RuleConfig `json:"config"`
	Summary     string             `json:"summary"`
	Description string             `json:"description"`
}

func runRules(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("daemonset-guard rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common offlineFlags
	common.bind(fs, "text", "json", "schema")
	fail := func(err error) int { return failure(stderr, "rules", err) }
	catalog, pol, err := common.parse(fs, args)
	if err != nil {
		return fail(err)
	}
	if common.output == "schema" {
		if err := writeJSON(stdout, policy.Schema(catalog)); err != nil {
			return fail(err)
		}
		return exitAdmitted
	}
	report := RuleCatalog{APIVersion: policy.APIVersion, Kind: "RuleCatalog"}
	for _, r := range catalog.Rules() {
		report.Rules = append(report.Rules, RuleSummary{Name: r.Name, Kind: r.Kind, Default: r.Default, Actions: r.Kind.Actions(),
			Config: pol.Rules[r.Name], Summary: r.Summary, Description: r.Description})
	}
	if common.output == "json" {
		if err := writeJSON(stdout, report); err != nil {
			return fail(err)
		}
		return exitAdmitted
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tDEFAULT\tACTION\tSUMMARY")
	for _, r := range report.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Default, r.Config.Action, strings.ReplaceAll(r.Summary, "`", ""))
	}
	if err := tw.Flush(); err != nil {
		return fail(err)
	}
	return exitAdmitted
}
