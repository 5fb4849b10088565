// Command apilatency measures what admission adds to DaemonSet creates
// through a real API server. In one run it creates the same realistic
// DaemonSet in four set-ups, each in its own namespace:
//
//   - no admission: daemonset-guard's webhooks and the CEL policies skip it;
//   - daemonset-guard: its mutating and validating webhooks are called;
//   - CEL: the MutatingAdmissionPolicy and ValidatingAdmissionPolicies of
//     policies.yaml, which do what daemonset-guard does as far as CEL can,
//     apply, and the webhooks skip it;
//   - minimal webhook: a controller-runtime webhook served by this program,
//     which decodes, sets daemonset-guard's mutation and patches, and
//     decodes and allows (package baseline), registered as daemonset-guard is.
//
// Each set-up gets sequential creates, then creates from concurrent workers,
// in rounds that rotate the order of the set-ups so that drift over the run
// favours none. It reports the client-side latency of each Create call, what
// each set-up adds over no admission, and the API server's own admission
// metrics over the same creates.
//
//	apilatency --kubeconfig .cluster/kubeconfig [--creates 300] [--workers 8] [--rows FILE] [--webhook-cpus 0]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "minimal-webhook" {
		err = serveMinimalWebhook(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apilatency:", err)
		os.Exit(1)
	}
}

// config is what the command line sets.
type config struct {
	kubeconfig string
	creates    int
	workers    int
	rounds     int
	warmup     int
	rows       string
	// webhookCPUs pins the minimal webhook as the webhook is pinned.
	webhookCPUs string
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("apilatency", flag.ContinueOnError)
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of a cluster with daemonset-guard registered")
	fs.IntVar(&cfg.creates, "creates", 300, "creates per set-up in each phase, sequential and concurrent")
	fs.IntVar(&cfg.workers, "workers", 8, "concurrent workers in the concurrent phase")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds the creates are split over, each running the set-ups in a rotated order")
	fs.IntVar(&cfg.warmup, "warmup", 30, "creates per set-up before measuring, not counted")
	fs.StringVar(&cfg.rows, "rows", "", "append the results as markdown table rows to this file")
	fs.StringVar(&cfg.webhookCPUs, "webhook-cpus", os.Getenv("WEBHOOK_CPUS"), "CPUs to pin the minimal webhook to, as taskset -c takes them (the local cluster pins daemonset-guard to $WEBHOOK_CPUS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case cfg.kubeconfig == "":
		return config{}, errors.New("--kubeconfig (or KUBECONFIG) is required")
	case cfg.workers < 1 || cfg.rounds < 1 || cfg.warmup < 0:
		return config{}, errors.New("--workers and --rounds must be positive, --warmup not negative")
	case cfg.creates < cfg.rounds:
		return config{}, fmt.Errorf("--creates (%d) must be at least --rounds (%d)", cfg.creates, cfg.rounds)
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, out io.Writer) (err error) {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	// Creates must wait in the API server, which is what is measured, not in
	// the client's rate limiter.
	restConfig.QPS, restConfig.Burst = 5000, 5000
	// Every create in the daemonset-guard namespace draws a targets-nodes
	// warning; printing thousands of them would bury the results.
	restConfig.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	policies, err := parsePolicies()
	if err != nil {
		return err
	}

	// Cleaning up must outlive an interrupted run.
	cleanupCtx := context.WithoutCancel(ctx)
	setups, err := createNamespaces(ctx, client)
	defer func() { err = errors.Join(err, deleteNamespaces(cleanupCtx, client, setups)) }()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, policies.remove(cleanupCtx, dyn)) }()
	if err := policies.apply(ctx, client, dyn); err != nil {
		return err
	}
	reference, err := daemonsetGuardsMutation(ctx, client, setups[daemonsetGuard])
	if err != nil {
		return err
	}
	minimal := &minimalWebhook{cpus: cfg.webhookCPUs, mutation: reference}
	stopMinimal, err := minimal.start(ctx, client)
	if stopMinimal != nil {
		defer func() { err = errors.Join(err, stopMinimal(cleanupCtx)) }()
	}
	if err != nil {
		return err
	}
	if err := awaitAdmission(ctx, restConfig, setups); err != nil {
		return err
	}

	m := &measurement{client: client, setups: setups, workers: cfg.workers}
	for _, s := range setups {
		if _, err := m.creates(ctx, s, "warmup", cfg.warmup, cfg.workers); err != nil {
			return fmt.Errorf("warming up set-up %s: %w", s.name, err)
		}
		if err := m.clear(ctx, s); err != nil {
			return err
		}
	}
	start := time.Now()
	results, err := m.run(ctx, cfg.creates, cfg.rounds)
	if err != nil {
		return err
	}
	object, err := json.Marshal(daemonSet(setups[0].namespace, "fluent-bit"))
	if err != nil {
		return err
	}
	r := &report{results: results, creates: cfg.creates, rounds: cfg.rounds, objectSize: len(object), elapsed: time.Since(start)}
	r.print(out)
	if cfg.rows != "" {
		return bench.AppendRows(cfg.rows, r.rows())
	}
	return nil
}
