package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
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
	Health Health `json:"health"`
}

// Health is what only a running cluster tells.
type Health struct {
	// Predicted is how many nodes the current template should run on.
	Predicted int `json:"predicted"`
	// Desired, Scheduled, Ready, Updated, Unavailable and Misscheduled are
	// the DaemonSet controller's counts.
	Desired      int32 `json:"desired"`
	Scheduled    int32 `json:"scheduled"`
	Ready        int32 `json:"ready"`
	Updated      int32 `json:"updated"`
	Unavailable  int32 `json:"unavailable"`
	Misscheduled int32 `json:"misscheduled"`
	// Problems are the health findings, in words.
	Problems []string `json:"problems,omitempty"`
}

func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("daemonset-guard audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "Kubeconfig of the cluster; empty uses $KUBECONFIG, then the in-cluster configuration.")
	namespace := fs.String("n", "", "Only this namespace; empty audits every namespace.")
	policyFile := fs.String("policy-file", "", "Policy to apply; empty uses the built-in policy.")
	output := fs.String("o", "text", "Output format: text or json.")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "daemonset-guard audit:", err)
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		return fail(fmt.Errorf("-o must be text or json, not %q", *output))
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %v", fs.Args()))
	}
	pol, err := loadPolicy(*policyFile)
	if err != nil {
		return fail(err)
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return fail(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	report, err := audit(context.Background(), client, *namespace, pol)
	if err != nil {
		return fail(err)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return fail(err)
		}
	} else {
		writeAudit(stdout, report, colours(isTerminal(stdout)))
	}
	return exitCode(report.Results, func(r AuditResult) offline.Result { return r.Result })
}

func audit(ctx context.Context, client kubernetes.Interface, namespace string, pol *policy.Policy) (*AuditReport, error) {
	nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	nodes := inventoryOf(nodeList.Items)
	list, err := client.AppsV1().DaemonSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing DaemonSets: %w", err)
	}
	report := &AuditReport{APIVersion: policy.APIVersion, Kind: "AuditReport"}
	for i := range list.Items {
		ds := &list.Items[i]
		// Judged as if created today: what the webhooks would change and say.
		res := offline.Evaluate(ds, pol, nodes)
		s := ds.Status
		h := Health{
			Desired:      s.DesiredNumberScheduled,
			Scheduled:    s.CurrentNumberScheduled,
			Ready:        s.NumberReady,
			Updated:      s.UpdatedNumberScheduled,
			Unavailable:  s.NumberUnavailable,
			Misscheduled: s.NumberMisscheduled,
		}
		current := s.ObservedGeneration == ds.Generation
		if cov, err := nodes.Coverage(&ds.Spec.Template.Spec); err != nil {
			h.Problems = append(h.Problems, fmt.Sprintf("placement could not be predicted: %v", err))
		} else if h.Predicted = cov.Eligible; current && int(s.DesiredNumberScheduled) != h.Predicted {
			h.Problems = append(h.Problems, fmt.Sprintf("the controller wants %d pods, daemonset-guard predicts %d", s.DesiredNumberScheduled, h.Predicted))
		}
		if s.CurrentNumberScheduled < s.DesiredNumberScheduled {
			h.Problems = append(h.Problems, fmt.Sprintf("%d of %d pods scheduled", s.CurrentNumberScheduled, s.DesiredNumberScheduled))
		}
		if s.NumberMisscheduled > 0 {
			h.Problems = append(h.Problems, fmt.Sprintf("%d pods run on nodes that should not run them", s.NumberMisscheduled))
		}
		if limit, err := rules.MaxUnavailable(ds.Spec.UpdateStrategy.RollingUpdate, int(s.DesiredNumberScheduled)); err == nil &&
			current && s.UpdatedNumberScheduled < s.DesiredNumberScheduled && s.NumberUnavailable > 0 && int(s.NumberUnavailable) >= limit {
			h.Problems = append(h.Problems, fmt.Sprintf("the rollout waits at its maxUnavailable limit: %d of %d pods updated, %d unavailable", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberUnavailable))
		}
		report.Results = append(report.Results, AuditResult{Result: *res, Health: h})
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
