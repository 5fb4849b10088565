package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseMetricsKeepsOnlyTheFamiliesAskedFor(t *testing.T) {
	text := `# HELP apiserver_admission_webhook_admission_duration_seconds Admission webhook latency.
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="mutate.daemonset-guard.io",le="0.005"} 3
apiserver_admission_webhook_admission_duration_seconds_bucket{name="mutate.daemonset-guard.io",le="+Inf"} 4
apiserver_admission_webhook_admission_duration_seconds_sum{name="mutate.daemonset-guard.io"} 0.03
apiserver_admission_webhook_admission_duration_seconds_count{name="mutate.daemonset-guard.io"} 4
# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP broken this line would not parse: {{{
this is not the text format
`
	families, err := ParseMetrics(strings.NewReader(text), "apiserver_admission_webhook_admission_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 {
		t.Fatalf("kept %d families, want only the histogram: %v", len(families), families)
	}
	h := families["apiserver_admission_webhook_admission_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 4 || len(h.GetBucket()) != 2 {
		t.Errorf("histogram = %v, want 4 samples in 2 buckets", h)
	}

	if _, err := ParseMetrics(strings.NewReader(text)); err == nil {
		t.Error("parsing everything: want the error of the broken lines")
	}
}

func TestForEachCallsEveryIndexOnce(t *testing.T) {
	var calls [100]atomic.Int32
	if err := ForEach(context.Background(), len(calls), 8, func(_ context.Context, i int) error {
		calls[i].Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("index %d called %d times", i, n)
		}
	}
}

func TestForEachStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var after atomic.Int32
	err := ForEach(context.Background(), 1000, 1, func(ctx context.Context, i int) error {
		if i == 10 {
			return boom
		}
		if i > 10 {
			after.Add(1)
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
	if n := after.Load(); n > 0 {
		t.Errorf("%d calls after the error", n)
	}
}

func TestAppendRowsAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.md")
	for _, r := range []Row{{"a", "1 ms", "2 ms", Ratio(1, 2)}, {"b", "3 ms", "0 ms", Ratio(3, 0)}} {
		if err := AppendRows(path, []Row{r}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "| a | 1 ms | 2 ms | 0.50x |\n| b | 3 ms | 0 ms | n/a |\n"; string(got) != want {
		t.Errorf("rows file:\n%s\nwant:\n%s", got, want)
	}
}

func TestPercentileTakesNearestRanks(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 99.5: 100 * time.Millisecond, 100: 100 * time.Millisecond, 0.1: time.Millisecond} {
		if got := Percentile(sorted, p); got != want {
			t.Errorf("Percentile(1..100 ms, %v) = %s, want %s", p, got, want)
		}
	}
	// Of three calls, the p50 is the second and the p99 the slowest.
	three := []time.Duration{time.Millisecond, 2 * time.Millisecond, 9 * time.Millisecond}
	if p50, p99 := Percentile(three, 50), Percentile(three, 99); p50 != 2*time.Millisecond || p99 != 9*time.Millisecond {
		t.Errorf("of 1, 2 and 9 ms: p50 %s and p99 %s, want 2ms and 9ms", p50, p99)
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("Percentile(nil) = %s, want 0", got)
	}
}
