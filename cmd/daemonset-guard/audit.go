package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// AuditReport is the JSON output of audit: stable, documented in the README.
type AuditReport struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Results    []AuditResult `json:"results"`
}

// AuditResult is what admission would say of one existing DaemonSet today,
// and how it runs.
type AuditResult struct {
	offline.Result
	Health offline.Health `json:"health"`
	// live is the DaemonSet as stored.
	live *appsv1.DaemonSet
}

func runAudit(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("daemonset-guard audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "Kubeconfig of the cluster; empty uses $KUBECONFIG, then the in-cluster configuration.")
	kubeContext := fs.String("context", "", "The kubeconfig's context to use, as kubectl's --context; empty uses the current one.")
	namespace := fs.String("n", "", "Only this namespace; empty audits every namespace.")
	write := fs.Bool("write-reports", false, "Also create or update one report per DaemonSet in the cluster, in --report-format (server-side apply, field manager daemonset-guard; the report goes with its DaemonSet).")
	var format reports.Format
	reportFormatFlag(fs, &format)
	var common offlineFlags
	common.bind(fs, "text", "json", "yaml", "openreports", "policyreport")
	fail := func(err error) int { return failure(stderr, "audit", err) }
	catalog, pol, err := common.parse(fs, args)
	if err != nil {
		return fail(err)
	}
	cfg, err := cliConfig(*kubeconfig, *kubeContext)
	if err != nil {
		return fail(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	report, err := audit(ctx, client, *namespace, catalog, pol, stderr)
	if err != nil {
		return fail(err)
	}
	if *write {
		if err := applyReports(ctx, cfg, format, openReports(report.Results, catalog, pol, time.Now())); err != nil {
			return fail(err)
		}
	}
	switch common.output {
	case "json":
		if err := writeJSON(stdout, report); err != nil {
			return fail(err)
		}
	case "yaml":
		if err := writeYAML(stdout, report); err != nil {
			return fail(err)
		}
	case "openreports", "policyreport":
		if err := writeReports(stdout, reports.Format(common.output), openReports(report.Results, catalog, pol, time.Now())); err != nil {
			return fail(err)
		}
	default:
		writeAudit(stdout, report, colours(isTerminal(stdout)))
	}
	return exitCode(report.Results, func(r AuditResult) offline.Result { return r.Result })
}

// progressEvery is how many DaemonSets audit judges between two progress
// lines on stderr; a smaller audit prints none.
const progressEvery = 250

func audit(ctx context.Context, client kubernetes.Interface, namespace string, catalog *rules.Catalog, pol *policy.Policy, progress io.Writer) (*AuditReport, error) {
	nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, unreachableError{fmt.Errorf("listing nodes: %w", err)}
	}
	ev := offline.Evaluator{Rules: catalog, Policy: pol, Nodes: inventoryOf(nodeList.Items)}
	if err := clusterViews(ctx, client, namespace, &ev); err != nil {
		return nil, err
	}
	list, err := client.AppsV1().DaemonSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, unreachableError{fmt.Errorf("listing DaemonSets: %w", err)}
	}
	report := &AuditReport{APIVersion: policy.APIVersion, Kind: "AuditReport"}
	for i := range list.Items {
		ds := &list.Items[i]
		// Judged as if created today: what the webhooks would change and say.
		res := ev.Evaluate(ds)
		h := ev.Health(ds)
		report.Results = append(report.Results, AuditResult{Result: *res, Health: h, live: ds})
		if done := i + 1; done%progressEvery == 0 && done < len(list.Items) {
			fmt.Fprintf(progress, "daemonset-guard audit: judged %d of %d DaemonSets\n", done, len(list.Items))
		}
	}
	return report, nil
}

func writeAudit(w io.Writer, report *AuditReport, c colours) {
	var b strings.Builder
	for _, r := range report.Results {
		writeResult(&b, c, CheckResult{Source: "cluster", Result: r.Result})
		h := r.Health
		fmt.Fprintf(&b, "  health: %d desired, %d scheduled, %d ready, %d updated, %d unavailable (predicted %d)\n",
			h.Desired, h.Scheduled, h.Ready, h.Updated, h.Unavailable, h.Predicted)
		for _, p := range h.Problems {
			fmt.Fprintf(&b, "  %s %s\n", c.paint("33", "health"), p)
		}
	}
	_, _ = io.WriteString(w, b.String())
}
