package main

import (
	"context"
	"fmt"
	"io"
	"time"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// openReports turns an audit into one Report per DaemonSet (see
// reports.Of).
func openReports(audited []AuditResult, catalog *rules.Catalog, pol *policy.Policy, now time.Time) []openreports.Report {
	out := make([]openreports.Report, 0, len(audited))
	for i := range audited {
		a := &audited[i]
		out = append(out, reports.Of(catalog, pol, a.live, &a.Result, a.Health, now))
	}
	return out
}

// applyReports writes the Reports to the cluster in the format; a failure
// leaves the audit incomplete.
func applyReports(ctx context.Context, cfg *rest.Config, format reports.Format, all []openreports.Report) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := reports.Apply(ctx, client, format, all); err != nil {
		return unreachableError{err}
	}
	return nil
}

// writeReports prints the Reports in the format as YAML documents, which
// kubectl apply takes as they are.
func writeReports(w io.Writer, format reports.Format, all []openreports.Report) error {
	for i := range all {
		data, err := yaml.Marshal(reports.In(format, &all[i]))
		if err != nil {
			return fmt.Errorf("encoding the report of %s/%s: %w", all[i].Scope.Namespace, all[i].Scope.Name, err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
			return err
		}
	}
	return nil
}
