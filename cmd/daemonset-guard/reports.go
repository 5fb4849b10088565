package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// reportSource names daemonset-guard in the Reports it writes, as Policy
// Reporter and other consumers group them.
const reportSource = "daemonset-guard"

// openReports turns an audit into one openreports.io/v1alpha1 Report per
// DaemonSet, in the DaemonSet's namespace and named by its UID (as Kyverno
// names its reports), with one result per rule: fail for a finding at deny,
// warn at warn or for a default a mutation rule would add, error when the
// rule could not be evaluated, skip when the policy does not apply it to the
// DaemonSet, and pass otherwise.
func openReports(audited []AuditResult, catalog *rules.Catalog, pol *policy.Policy, now time.Time) []openreports.Report {
	reports := make([]openreports.Report, 0, len(audited))
	for _, a := range audited {
		ds, res := a.live, a.Result
		properties := map[string]string{}
		if res.Coverage != nil {
			properties["eligibleNodes"] = strconv.Itoa(res.Coverage.Eligible)
			properties["totalNodes"] = strconv.Itoa(res.Coverage.Nodes)
		}
		if steps, ok := rolloutSteps(ds, int(a.Health.Desired)); ok {
			properties["rolloutSteps"] = strconv.Itoa(steps)
		}
		report := openreports.Report{
			TypeMeta: metav1.TypeMeta{APIVersion: openreports.SchemeGroupVersion.String(), Kind: "Report"},
			ObjectMeta: metav1.ObjectMeta{Name: string(ds.UID), Namespace: ds.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": reportSource},
				// The garbage collector deletes the Report with its DaemonSet.
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID}}},
			Source: reportSource,
			Scope:  &corev1.ObjectReference{APIVersion: "apps/v1", Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID},
		}
		for _, rule := range catalog.Rules() {
			result := openreports.ReportResult{Source: reportSource, Policy: reportSource, Rule: rule.Name,
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
		reports = append(reports, report)
	}
	return reports
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

// applyReports creates or updates the Reports in the cluster by server-side
// apply, as the field manager daemonset-guard: a report consumer's own
// fields stay, and a later audit replaces only what an earlier one wrote.
func applyReports(ctx context.Context, cfg *rest.Config, reports []openreports.Report) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	api := client.Resource(openreports.SchemeGroupVersion.WithResource("reports"))
	for i := range reports {
		r := &reports[i]
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := api.Namespace(r.Namespace).Patch(ctx, r.Name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: reportSource, Force: new(true)}); err != nil {
			hint := ""
			if apierrors.IsNotFound(err) {
				hint = " (the cluster has no openreports.io/v1alpha1 Reports: install the CRDs of github.com/openreports/reports-api, config/install.yaml)"
			}
			return unreachableError{fmt.Errorf("writing the Report of %s/%s: %w%s", r.Namespace, r.Scope.Name, err, hint)}
		}
	}
	return nil
}

// writeReports prints the Reports as YAML documents, which kubectl apply
// takes as they are.
func writeReports(w io.Writer, reports []openreports.Report) error {
	for i := range reports {
		data, err := yaml.Marshal(&reports[i])
		if err != nil {
			return fmt.Errorf("encoding the report of %s/%s: %w", reports[i].Scope.Namespace, reports[i].Scope.Name, err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
			return err
		}
	}
	return nil
}
