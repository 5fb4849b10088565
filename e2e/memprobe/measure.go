package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/procfs"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
	"github.com/daemonset-guard/daemonset-guard/webhook"
)

// The webhook's metrics memprobe reads.
const (
	inventoryMetric = "daemonset_guard_inventory_nodes"
	heapMetric      = "go_memstats_heap_inuse_bytes"
	lastGCMetric    = "go_memstats_last_gc_time_seconds"
	// eligibleMetric has a series per DaemonSet that the leader's
	// node-change view holds and has evaluated.
	eligibleMetric = "daemonset_guard_daemonset_eligible_nodes"
)

// targetRSS returns the most the webhook should take with nodes Nodes, and
// at which scale the goal is set: issue 16's goals are 64 MiB at 5,000 Nodes
// and 200 MiB at 50,000. A run of fewer than 20,000 Nodes is held to the
// first, a larger one to the second.
func targetRSS(nodes int) (limit uint64, at int) {
	if nodes < 20000 {
		return 64 << 20, 5000
	}
	return 200 << 20, 50000
}

// cacheCommand is the hidden command that measure runs as a child process,
// once per kind of cache.
const cacheCommand = "cache"

// measureOptions are measure's flags.
type measureOptions struct {
	kubeconfig string
	metricsURL string
	pidFile    string
	rows       string
}

// memory is what a process holds once its cache is full and garbage has
// been collected.
type memory struct {
	Objects int    `json:"objects"`
	RSS     uint64 `json:"rssBytes"`
	// RSSFile is the file-backed part of RSS: the pages of the executable
	// that the process has touched, and those around them.
	RSSFile uint64 `json:"rssFileBytes"`
	// PeakRSS is the most RSS the process has had since it started, its
	// initial lists included: what a memory limit must leave room for.
	PeakRSS   uint64 `json:"peakRSSBytes"`
	HeapInuse uint64 `json:"heapInuseBytes"`
}

// Kinds of cache the cache command fills.
const (
	nodesKind      = "nodes"
	daemonSetsKind = "daemonsets"
)

// measure measures the webhook, then processes with a cache of whole and of
// stripped Nodes, and of whole and of stripped DaemonSets when the cluster
// has any, one after the other so that none competes with another for the
// CPU.
func measure(ctx context.Context, cfg *rest.Config, opts measureOptions, out io.Writer) error {
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	total, err := count(ctx, "Nodes", func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
		return clientset.CoreV1().Nodes().List(ctx, o)
	})
	if err != nil {
		return err
	}
	daemonSets, err := count(ctx, "DaemonSets", func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
		return clientset.AppsV1().DaemonSets("").List(ctx, o)
	})
	if err != nil {
		return err
	}
	webhookMemory, err := measureWebhook(ctx, opts, total, daemonSets)
	if err != nil {
		return err
	}
	type process struct {
		name, kind string
		strip      bool
		want       int
		m          memory
	}
	processes := []*process{
		{name: "controller-runtime cache, whole Nodes", kind: nodesKind, want: total},
		{name: "controller-runtime cache, inventory.NodeStripper", kind: nodesKind, strip: true, want: total},
	}
	if daemonSets > 0 {
		processes = append(processes,
			&process{name: "controller-runtime cache, whole DaemonSets", kind: daemonSetsKind, want: daemonSets},
			&process{name: "controller-runtime cache, nodechange.StripDaemonSet", kind: daemonSetsKind, strip: true, want: daemonSets})
	}
	for _, p := range processes {
		if p.m, err = runCache(ctx, opts.kubeconfig, p.kind, p.strip, p.want); err != nil {
			return fmt.Errorf("measuring a %s: %w", p.name, err)
		}
	}

	nodes := thousands(total)
	fmt.Fprintf(out, "Memory with %s Nodes and %s DaemonSets in the cluster, once each process has cached them all and collected garbage\n", nodes, thousands(daemonSets))
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "process\tobjects\tRSS\tof it file-backed\tpeak RSS\theap in use")
	fmt.Fprintf(w, "daemonset-guard webhook\t%d Nodes, %d DaemonSets\t%s\t%s\t%s\t%s\n", webhookMemory.Objects, daemonSets, mib(webhookMemory.RSS), mib(webhookMemory.RSSFile), mib(webhookMemory.PeakRSS), mib(webhookMemory.HeapInuse))
	for _, p := range processes {
		fmt.Fprintf(w, "%s\t%d %s\t%s\t%s\t%s\t%s\n", p.name, p.m.Objects, p.kind, mib(p.m.RSS), mib(p.m.RSSFile), mib(p.m.PeakRSS), mib(p.m.HeapInuse))
	}
	w.Flush()
	verdict := "met"
	target, targetAt := targetRSS(total)
	if webhookMemory.RSS > target {
		verdict = "missed"
	}
	fmt.Fprintf(out, "webhook RSS %s, target <= %s at %s Nodes: %s\n", mib(webhookMemory.RSS), mib(target), thousands(targetAt), verdict)

	if opts.rows == "" {
		return nil
	}
	row := func(what, at, pair string, value, baseline uint64) bench.Row {
		return bench.Row{
			Measurement: fmt.Sprintf("%s at %s, %s", what, at, pair),
			Value:       mib(value), Baseline: mib(baseline), Ratio: bench.Ratio(float64(value), float64(baseline)),
		}
	}
	at := nodes + " Nodes"
	whole, stripped := processes[0].m, processes[1].m
	// The goal's row says how much of each RSS is the binary's pages, which
	// depend on the kernel's page cache more than on the program.
	goal := row("RSS", at, fmt.Sprintf("webhook vs whole-Node informer (goal ≤ %s; of it file-backed)", mib(target)), webhookMemory.RSS, whole.RSS)
	goal.Value += " (" + mib(webhookMemory.RSSFile) + ")"
	goal.Baseline += " (" + mib(whole.RSSFile) + ")"
	rows := []bench.Row{
		goal,
		row("Heap in use", at, "webhook vs whole-Node informer", webhookMemory.HeapInuse, whole.HeapInuse),
		row("Peak RSS since start", at, "webhook vs whole-Node informer (the initial lists included)", webhookMemory.PeakRSS, whole.PeakRSS),
		row("RSS", at, "NodeStripper informer vs whole-Node informer", stripped.RSS, whole.RSS),
		row("Heap in use", at, "NodeStripper informer vs whole-Node informer", stripped.HeapInuse, whole.HeapInuse),
	}
	if daemonSets > 0 {
		at := thousands(daemonSets) + " DaemonSets"
		whole, stripped := processes[2].m, processes[3].m
		rows = append(rows,
			row("RSS", at, "StripDaemonSet informer vs whole-DaemonSet informer", stripped.RSS, whole.RSS),
			row("Heap in use", at, "StripDaemonSet informer vs whole-DaemonSet informer", stripped.HeapInuse, whole.HeapInuse))
	}
	return bench.AppendRows(opts.rows, rows)
}

// count returns how many objects list finds, from a one-item page and the
// count of those remaining.
func count(ctx context.Context, what string, list func(context.Context, metav1.ListOptions) (k8sruntime.Object, error)) (int, error) {
	page, err := list(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", what, err)
	}
	n := meta.LenList(page)
	if list, err := meta.ListAccessor(page); err == nil && list.GetRemainingItemCount() != nil {
		remaining := list.GetRemainingItemCount()
		n += int(*remaining)
	}
	return n, nil
}

// measureWebhook waits until the webhook's inventory holds every Node, its
// leader's node-change view every DaemonSet, and the Go runtime has collected
// garbage since, then reads the webhook's heap in use and RSS. Reading before
// the leader has its DaemonSets would leave their view out, or catch the
// garbage of their initial list. The webhook cannot be told to collect, but
// Go collects at least every two minutes, and the webhook collects once each
// view has synced (informed.ReleaseAfterSync).
func measureWebhook(ctx context.Context, opts measureOptions, nodes, daemonSets int) (memory, error) {
	raw, err := os.ReadFile(opts.pidFile)
	if err != nil {
		return memory{}, fmt.Errorf("reading the webhook's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return memory{}, fmt.Errorf("reading the webhook's pid from %s: %w", opts.pidFile, err)
	}
	var (
		synced time.Time
		m      memory
	)
	err = wait.PollUntilContextTimeout(ctx, time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		metrics, err := scrapeWebhook(ctx, opts.metricsURL)
		if err != nil {
			return false, err
		}
		if synced.IsZero() {
			if int(metrics[inventoryMetric]) >= nodes && int(metrics[eligibleMetric]) >= daemonSets {
				synced = time.Now()
			}
			return false, nil
		}
		lastGC := time.Unix(0, int64(metrics[lastGCMetric]*float64(time.Second)))
		if lastGC.Before(synced) {
			return false, nil
		}
		m = memory{Objects: int(metrics[inventoryMetric]), HeapInuse: uint64(metrics[heapMetric])}
		if err := residentSet(pid, &m); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		if synced.IsZero() {
			return memory{}, fmt.Errorf("waiting for the webhook's inventory to hold %d Nodes and its leader %d DaemonSets: %w", nodes, daemonSets, err)
		}
		return memory{}, fmt.Errorf("waiting for the webhook to collect garbage: %w", err)
	}
	return m, nil
}

// scrapeWebhook reads the webhook's gauges that memprobe uses and, for
// eligibleMetric, the number of its series (none until the webhook leads).
func scrapeWebhook(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the webhook's metrics: %s", resp.Status)
	}
	families, err := bench.ParseMetrics(resp.Body, inventoryMetric, heapMetric, lastGCMetric, eligibleMetric)
	if err != nil {
		return nil, err
	}
	gauges := map[string]float64{eligibleMetric: float64(len(families[eligibleMetric].GetMetric()))}
	for _, name := range []string{inventoryMetric, heapMetric, lastGCMetric} {
		f, ok := families[name]
		if !ok || len(f.GetMetric()) != 1 {
			return nil, fmt.Errorf("the webhook's metrics have no %s", name)
		}
		gauges[name] = f.GetMetric()[0].GetGauge().GetValue()
	}
	return gauges, nil
}

// runCache runs this program as a child process with the cache command, so
// that the cache is alone in its heap, and returns what it measured.
func runCache(ctx context.Context, kubeconfig, kind string, strip bool, want int) (memory, error) {
	self, err := os.Executable()
	if err != nil {
		return memory{}, err
	}
	cmd := exec.CommandContext(ctx, self, cacheCommand, "--kubeconfig", kubeconfig, "--kind", kind, "--strip="+strconv.FormatBool(strip), "--objects", strconv.Itoa(want))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return memory{}, err
	}
	var m memory
	if err := json.Unmarshal(out, &m); err != nil {
		return memory{}, fmt.Errorf("reading the child's result %q: %w", out, err)
	}
	return m, nil
}

// measureCache fills a controller-runtime cache with the cluster's Nodes or
// DaemonSets, whole or stripped as the webhook strips them, collects
// garbage, and writes the process's memory as JSON.
func measureCache(ctx context.Context, cfg *rest.Config, kind string, strip bool, want int, out io.Writer) error {
	opts := cache.Options{}
	if strip {
		opts = webhook.CacheOptions()
	}
	var obj client.Object
	switch kind {
	case nodesKind:
		obj = &corev1.Node{}
	case daemonSetsKind:
		obj = &appsv1.DaemonSet{}
	default:
		return fmt.Errorf("--kind must be %s or %s, not %q", nodesKind, daemonSetsKind, kind)
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the cache: %w", err)
	}
	// A cache that cannot sync must fail the run, not hang it.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return fmt.Errorf("creating the %s informer: %w", kind, err)
	}
	// Counted as they arrive: the webhook's transforms store inventory.Nodes
	// and nodechange.DaemonSets, which the cache's reader cannot list.
	var objects atomic.Int64
	registration, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { objects.Add(1) },
		DeleteFunc: func(any) { objects.Add(-1) },
	})
	if err != nil {
		return fmt.Errorf("counting the cached %s: %w", kind, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) || !toolscache.WaitForCacheSync(ctx.Done(), registration.HasSynced) {
		cancel()
		return errors.Join(fmt.Errorf("the %s cache did not sync", kind), <-stopped)
	}
	m := memory{Objects: int(objects.Load())}
	if m.Objects < want {
		return fmt.Errorf("the cache holds %d %s after syncing, want %d", m.Objects, kind, want)
	}
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	m.HeapInuse = stats.HeapInuse
	if err := residentSet(os.Getpid(), &m); err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(m)
}

// residentSet reads into m a process's resident set as Linux reports it in
// /proc/<pid>/status: its size, the part of it that is file-backed
// (RssFile, mostly the executable's mapped pages), and its peak since the
// process started (VmHWM).
func residentSet(pid int, m *memory) error {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return fmt.Errorf("finding process %d: %w", pid, err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return fmt.Errorf("reading the RSS of process %d: %w", pid, err)
	}
	m.RSS, m.RSSFile, m.PeakRSS = status.VmRSS, status.RssFile, status.VmHWM
	return nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// thousands formats n with thousands separators: 5,020.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
