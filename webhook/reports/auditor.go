package reports

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
)

// Auditor writes the Report of every DaemonSet of the cluster on an
// interval, as `daemonset-guard audit --write-reports` would, from the
// webhook's leader and with its live views of the cluster.
type Auditor struct {
	Interval time.Duration
	// Client lists the DaemonSets; Reports writes the Reports.
	Client  kubernetes.Interface
	Reports dynamic.Interface
	// Format is the API the Reports are written in.
	Format Format
	// Evaluator returns the evaluator of the moment: the policy in force
	// and the webhook's views of nodes, PriorityClasses and namespaces.
	Evaluator func() offline.Evaluator
	// Ready reports whether the views can answer (the node inventory has
	// synced); until then a round is skipped.
	Ready func() bool
	Log   logr.Logger
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica
// writes the Reports.
func (*Auditor) NeedLeaderElection() bool { return true }

// Start audits once the views are ready and then every Interval, until ctx
// is done. A failed round is logged and the next one tried: the Reports are
// a view of the cluster, not something admission depends on.
func (a *Auditor) Start(ctx context.Context) error {
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) { return a.Ready(), nil }); err != nil {
		return nil // stopped before the views were ready
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		start := time.Now()
		n, err := a.Audit(ctx)
		if err != nil {
			a.Log.Error(err, "writing the DaemonSets' Reports", "written", n)
			return
		}
		a.Log.Info("wrote the DaemonSets' Reports", "daemonSets", n, "took", time.Since(start).Round(time.Millisecond))
	}, a.Interval)
	return nil
}

// Audit writes the Report of every DaemonSet once and returns how many it
// wrote.
func (a *Auditor) Audit(ctx context.Context) (int, error) {
	ev := a.Evaluator()
	now := time.Now()
	written := 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		page, err := a.Client.AppsV1().DaemonSets("").List(ctx, opts)
		if err != nil {
			return written, fmt.Errorf("listing DaemonSets: %w", err)
		}
		all := make([]openreports.Report, 0, len(page.Items))
		for i := range page.Items {
			ds := &page.Items[i]
			all = append(all, Of(ev.Rules, ev.Policy, ds, ev.Evaluate(ds), ev.Health(ds), now))
		}
		if err := Apply(ctx, a.Reports, a.Format, all); err != nil {
			return written, err
		}
		written += len(all)
		if opts.Continue = page.Continue; opts.Continue == "" {
			return written, nil
		}
	}
}
