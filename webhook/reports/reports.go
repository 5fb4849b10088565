// Package reports turns what daemonset-guard says of a stored DaemonSet
// into an openreports.io/v1alpha1 Report, with the published types of
// github.com/openreports/reports-api, or into a wgpolicyk8s.io/v1alpha2
// PolicyReport for clusters still on that API (with the types Kyverno
// publishes for it), and writes them to the cluster, so that Policy Reporter
// and other report consumers show daemonset-guard's findings beside
// Kyverno's.
package reports

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	policyreport "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Source names daemonset-guard in the Reports it writes, as report
// consumers group them; it is also the field manager that writes them.
const Source = "daemonset-guard"

// Format is the API that reports are written in.
type Format string

// The report APIs: OpenReports, which Policy Reporter and Kyverno read from
// Kyverno 1.15, and the Policy WG's wgpolicyk8s.io PolicyReport before it.
const (
	OpenReports  Format = "openreports"
	PolicyReport Format = "policyreport"
)

// Formats are the report APIs, OpenReports first.
var Formats = []Format{OpenReports, PolicyReport}

// resource is the API resource of the format's namespaced reports, and what
// to install where the cluster has none.
func (f Format) resource() (schema.GroupVersionResource, string) {
	if f == PolicyReport {
		return policyreport.SchemeGroupVersion.WithResource("policyreports"),
			"the cluster has no wgpolicyk8s.io/v1alpha2 PolicyReports: install their CRDs (Kyverno's config/crds/policyreport), or write openreports.io Reports"
	}
	return openreports.SchemeGroupVersion.WithResource("reports"),
		"the cluster has no openreports.io/v1alpha1 Reports: install the CRDs of github.com/openreports/reports-api, config/install.yaml"
}

// In returns the Report in the format: itself for OpenReports, else the
// PolicyReport that says the same, from which the OpenReports API was
// derived field for field.
func In(f Format, r *openreports.Report) any {
	if f != PolicyReport {
		return r
	}
	pr := &policyreport.PolicyReport{
		TypeMeta:   metav1.TypeMeta{APIVersion: policyreport.SchemeGroupVersion.String(), Kind: "PolicyReport"},
		ObjectMeta: r.ObjectMeta,
		Scope:      r.Scope,
		Summary: policyreport.PolicyReportSummary{Pass: r.Summary.Pass, Fail: r.Summary.Fail, Warn: r.Summary.Warn,
			Error: r.Summary.Error, Skip: r.Summary.Skip},
	}
	for _, res := range r.Results {
		pr.Results = append(pr.Results, policyreport.PolicyReportResult{Source: res.Source, Policy: res.Policy, Rule: res.Rule,
			Category: res.Category, Severity: policyreport.PolicySeverity(res.Severity), Timestamp: res.Timestamp,
			Result: policyreport.PolicyResult(res.Result), Scored: res.Scored, Resources: res.Subjects,
			ResourceSelector: res.ResourceSelector, Message: res.Description, Properties: res.Properties})
	}
	return pr
}

// Of returns the Report of a stored DaemonSet, from what the evaluator said
// of it (res) and how it runs (health): in the DaemonSet's namespace, named
// by its UID (as Kyverno names its reports) and owned by it, with one result
// per rule of the catalog: fail for a finding at deny, warn at warn or for a
// default a mutation rule would add, error when the rule could not be
// evaluated, skip when the policy does not apply it to the DaemonSet, and
// pass otherwise.
func Of(catalog *rules.Catalog, pol *policy.Policy, ds *appsv1.DaemonSet, res *offline.Result, health offline.Health, now time.Time) openreports.Report {
	properties := map[string]string{}
	if res.Coverage != nil {
		properties["eligibleNodes"] = strconv.Itoa(res.Coverage.Eligible)
		properties["totalNodes"] = strconv.Itoa(res.Coverage.Nodes)
	}
	if steps, ok := rolloutSteps(ds, int(health.Desired)); ok {
		properties["rolloutSteps"] = strconv.Itoa(steps)
	}
	report := openreports.Report{
		TypeMeta: metav1.TypeMeta{APIVersion: openreports.SchemeGroupVersion.String(), Kind: "Report"},
		ObjectMeta: metav1.ObjectMeta{Name: string(ds.UID), Namespace: ds.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": Source},
			// The garbage collector deletes the Report with its DaemonSet.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID}}},
		Source: Source,
		Scope:  &corev1.ObjectReference{APIVersion: "apps/v1", Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID},
	}
	for _, rule := range catalog.Rules() {
		result := openreports.ReportResult{Source: Source, Policy: Source, Rule: rule.Name,
			Timestamp: metav1.Timestamp{Seconds: now.Unix()}, Result: "pass", Properties: properties}
		var messages []string
		for _, f := range res.Findings {
			if f.Rule != rule.Name {
				continue
			}
			messages = append(messages, f.Field+": "+f.Message)
			if f.Action == policy.Deny {
				result.Result = "fail"
			} else if result.Result == "pass" {
				result.Result = "warn"
			}
		}
		for _, e := range res.RuleErrors {
			if e.Rule == rule.Name {
				result.Result = "error"
				messages = append(messages, e.Message)
			}
		}
		// A default the DaemonSet lacks is worth knowing, not a failure.
		if result.Result == "pass" && slices.Contains(res.Mutations, rule.Name) {
			result.Result = "warn"
			messages = append(messages, "the mutating webhook would change this DaemonSet if it were created today ("+rule.Summary+"); daemonset-guard check shows the patch")
		}
		if result.Result == "pass" && !rules.Applies(pol, ds, rule.Name) {
			result.Result = "skip"
		}
		result.Description = cmp.Or(strings.Join(messages, "; "), rule.Summary)
		report.Results = append(report.Results, result)
		count(&report.Summary, result.Result)
	}
	return report
}

// rolloutSteps is how many steps a rolling update of the DaemonSet takes at
// its maxUnavailable (or maxSurge), when it rolls at all.
func rolloutSteps(ds *appsv1.DaemonSet, desired int) (int, bool) {
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || desired == 0 {
		return 0, false
	}
	steps, err := rules.RolloutSteps(ds, desired)
	return steps, err == nil
}

func count(s *openreports.ReportSummary, result openreports.Result) {
	switch result {
	case "pass":
		s.Pass++
	case "fail":
		s.Fail++
	case "warn":
		s.Warn++
	case "error":
		s.Error++
	case "skip":
		s.Skip++
	}
}

// Apply creates or updates the Reports in the cluster, in the format, by
// server-side apply as the field manager Source: a report consumer's own
// fields stay, and a later audit replaces only what an earlier one wrote.
func Apply(ctx context.Context, client dynamic.Interface, format Format, reports []openreports.Report) error {
	resource, missing := format.resource()
	api := client.Resource(resource)
	for i := range reports {
		r := &reports[i]
		body, err := json.Marshal(In(format, r))
		if err != nil {
			return err
		}
		if _, err := api.Namespace(r.Namespace).Patch(ctx, r.Name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: Source, Force: new(true)}); err != nil {
			hint := ""
			if apierrors.IsNotFound(err) {
				hint = " (" + missing + ")"
			}
			return fmt.Errorf("writing the %s of %s/%s: %w%s", resource.Resource, r.Namespace, r.Scope.Name, err, hint)
		}
	}
	return nil
}
