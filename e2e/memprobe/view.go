package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
)

// viewCommand is the hidden command that view runs as a child process, once
// per node count.
const viewCommand = "view-child"

// targetViewRSS is the most a webhook with 50,000 Nodes should take (issue
// 16's goal).
const targetViewRSS = 200 << 20

// measureViews measures, in a child process each, what the webhook's view
// of the Nodes holds at each count: no cluster can hold 50,000 Nodes on
// these machines, so the view is built in memory from the same realistic
// Nodes memprobe nodes creates, stripped as the informer strips them.
func measureViews(ctx context.Context, counts []int, rows string, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	measured := make([]memory, len(counts))
	for i, n := range counts {
		cmd := exec.CommandContext(ctx, self, viewCommand, "--count", strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		data, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring the view of %d Nodes: %w", n, err)
		}
		if err := json.Unmarshal(data, &measured[i]); err != nil {
			return fmt.Errorf("reading the child's result %q: %w", data, err)
		}
	}
	fmt.Fprintln(out, "The webhook's Node view alone (an informer's store of stripped realistic Nodes and the inventory), in a process of its own")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Nodes\tRSS\theap in use")
	for _, m := range measured {
		fmt.Fprintf(w, "%s\t%s\t%s\n", thousands(m.Objects), mib(m.RSS), mib(m.HeapInuse))
	}
	w.Flush()
	if rows == "" || len(measured) < 2 {
		return nil
	}
	small, large := measured[0], measured[len(measured)-1]
	pair := fmt.Sprintf("%s vs %s Nodes", thousands(large.Objects), thousands(small.Objects))
	return bench.AppendRows(rows, []bench.Row{
		{Measurement: fmt.Sprintf("RSS of the webhook's Node view alone, %s (goal: the webhook ≤ %s at 50,000)", pair, mib(targetViewRSS)),
			Value: mib(large.RSS), Baseline: mib(small.RSS), Ratio: bench.Ratio(float64(large.RSS), float64(small.RSS))},
		{Measurement: "Heap in use of the webhook's Node view alone, " + pair,
			Value: mib(large.HeapInuse), Baseline: mib(small.HeapInuse), Ratio: bench.Ratio(float64(large.HeapInuse), float64(small.HeapInuse))},
	})
}

// measureView builds the view of count realistic Nodes, collects garbage,
// and writes the process's memory as JSON.
func measureView(count int, out io.Writer) error {
	images, now := pulledImages(), metav1.Now()
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	stripper, inv := inventory.NewNodeStripper(), inventory.New()
	for i, n := range fixture.Cluster(count, nodeClasses) {
		obj, err := stripper.Strip(realNode(n, i, images, now))
		if err != nil {
			return err
		}
		if err := store.Add(obj); err != nil {
			return err
		}
		inv.OnAdd(obj, true)
	}
	debug.FreeOSMemory()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	m := memory{Objects: len(store.ListKeys()), HeapInuse: stats.HeapInuse}
	if err := residentSet(os.Getpid(), &m); err != nil {
		return err
	}
	if nodes, _ := inv.Size(); nodes != count {
		return fmt.Errorf("the inventory holds %d Nodes, want %d", nodes, count)
	}
	return json.NewEncoder(out).Encode(m)
}
