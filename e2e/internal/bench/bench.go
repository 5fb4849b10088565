// Package bench holds what the measurement programs of `make bench` share:
// sending requests from concurrent workers, latency percentiles, reading
// Prometheus metrics, and writing the rows of the README's bench table.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
)

// Row is one row of the README's bench table: a measurement of
// daemonset-guard next to a baseline measured in the same run.
type Row struct {
	Measurement string
	Value       string
	Baseline    string
	Ratio       string
}

// AppendRows appends the rows to the file at path as markdown table rows,
// creating it if needed, so that several programs can add to one table.
func AppendRows(path string, rows []Row) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening the rows file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing the rows file: %w", cerr)
		}
	}()
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Measurement, r.Value, r.Baseline, r.Ratio)
	}
	if _, err := io.WriteString(f, b.String()); err != nil {
		return fmt.Errorf("writing the rows file: %w", err)
	}
	return nil
}

// Ratio formats value/baseline as "1.6x"; with no positive baseline there is
// no meaningful ratio, and it says "n/a".
func Ratio(value, baseline float64) string {
	if baseline <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", value/baseline)
}

// Percentile returns the nearest-rank percentile p (0 < p <= 100) of
// latencies sorted in increasing order: the smallest latency that p% of the
// calls did not exceed. Every program of the bench table reports percentiles
// with it, so that their p99s mean the same thing.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(0, int(math.Ceil(p/100*float64(len(sorted))))-1)]
}

// ForEach calls f for every index below n from the given number of
// goroutines, each taking the next index when done with its last, and
// returns the first error, which cancels the context of the others.
func ForEach(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(ctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// ParseMetrics parses the Prometheus text format, as served on /metrics by
// the API server and by controller-runtime, into metric families by name.
// Given prefixes, it keeps only the families whose names start with one: the
// API server serves megabytes of metrics, and parsing them all takes a CPU
// for a fifth of a second.
func ParseMetrics(r io.Reader, prefixes ...string) (map[string]*dto.MetricFamily, error) {
	if len(prefixes) > 0 {
		var kept bytes.Buffer
		lines := bufio.NewScanner(r)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			if name := metricName(lines.Text()); slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
				kept.Write(lines.Bytes())
				kept.WriteByte('\n')
			}
		}
		if err := lines.Err(); err != nil {
			return nil, fmt.Errorf("reading metrics: %w", err)
		}
		r = &kept
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return families, nil
}

// metricName returns the name of the metric a line of the text format is
// about: a sample, or its # HELP or # TYPE comment.
func metricName(line string) string {
	if rest, ok := strings.CutPrefix(line, "# "); ok {
		_, rest, _ = strings.Cut(rest, " ") // HELP or TYPE
		line = rest
	}
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		return line[:i]
	}
	return line
}
