// Command memprobe measures what the webhook's caches cost in memory at
// scale: the RSS and heap of the running daemonset-guard webhook with
// thousands of realistic Nodes in the cluster, beside minimal processes with
// a controller-runtime cache of the same Nodes, one keeping whole Node
// objects and one stripping them with the webhook's transform, and the same
// pair for the cluster's DaemonSets, which the leader caches.
//
//	memprobe nodes --kubeconfig FILE [--count 5000]
//	    create realistic Nodes, which kwok reports Ready
//	memprobe daemonsets --kubeconfig FILE [--count 1000]
//	    create realistic DaemonSets (in a namespace whose quota allows no pods)
//	memprobe measure --kubeconfig FILE --webhook-metrics URL --webhook-pid-file FILE [--rows FILE]
//	    measure the webhook, then the cache processes (those of DaemonSets
//	    when the cluster has any)
//
// Restart the webhook between the two (e2e/local-cluster.sh restart-webhook)
// so that it lists the Nodes at start-up, as the cache processes do.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "memprobe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: memprobe nodes|daemonsets|measure|view [flags]")
	}
	fs := flag.NewFlagSet("memprobe "+args[0], flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	parse := func() (*rest.Config, error) {
		if err := fs.Parse(args[1:]); err != nil {
			return nil, err
		}
		if fs.NArg() > 0 {
			return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
		}
		if *kubeconfig == "" {
			return nil, errors.New("--kubeconfig (or KUBECONFIG) is required")
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading the kubeconfig: %w", err)
		}
		return cfg, nil
	}

	switch args[0] {
	case "nodes", "daemonsets":
		create, defaultCount, what := createNodes, 5000, "Nodes"
		if args[0] == "daemonsets" {
			create, defaultCount, what = createDaemonSets, 1000, "DaemonSets"
		}
		count := fs.Int("count", defaultCount, what+" to create")
		workers := fs.Int("workers", 8, "concurrent creates")
		cfg, err := parse()
		if err != nil {
			return err
		}
		if *count < 1 || *workers < 1 {
			return errors.New("--count and --workers must be positive")
		}
		return create(ctx, cfg, *count, *workers, out)
	case "measure":
		var opts measureOptions
		fs.StringVar(&opts.metricsURL, "webhook-metrics", "http://127.0.0.1:18080/metrics", "the webhook's metrics endpoint")
		fs.StringVar(&opts.pidFile, "webhook-pid-file", ".cluster/webhook.pid", "file holding the webhook's process id")
		fs.StringVar(&opts.rows, "rows", "", "append the results as markdown table rows to this file")
		cfg, err := parse()
		if err != nil {
			return err
		}
		// The cache processes connect as this one does.
		opts.kubeconfig = *kubeconfig
		return measure(ctx, cfg, opts, out)
	case "view":
		counts := fs.String("counts", "5000,50000", "Node counts to measure the view at, comma-separated, smallest first")
		rows := fs.String("rows", "", "append the results as markdown table rows to this file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var ns []int
		for _, c := range strings.Split(*counts, ",") {
			n, err := strconv.Atoi(c)
			if err != nil || n < 1 {
				return fmt.Errorf("--counts: %q is not a positive number", c)
			}
			ns = append(ns, n)
		}
		return measureViews(ctx, ns, *rows, out)
	case viewCommand:
		count := fs.Int("count", 5000, "Nodes in the view")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return measureView(*count, out)
	case cacheCommand:
		kind := fs.String("kind", nodesKind, "what to cache: nodes or daemonsets")
		strip := fs.Bool("strip", false, "strip the objects with the webhook's transforms (inventory.NodeStripper, nodechange.StripDaemonSet)")
		want := fs.Int("objects", 0, "objects the cache must hold before it is measured")
		cfg, err := parse()
		if err != nil {
			return err
		}
		return measureCache(ctx, cfg, *kind, *strip, *want, out)
	}
	return fmt.Errorf("unknown command %q: want nodes, daemonsets, measure or view", args[0])
}
