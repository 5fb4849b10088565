package main

import (
	"testing"
	"time"
)

func TestSummarizeTakesNearestRanks(t *testing.T) {
	var latencies []time.Duration
	for i := 100; i >= 1; i-- {
		latencies = append(latencies, time.Duration(i)*time.Millisecond)
	}
	got := summarize(latencies)
	want := stats{n: 100, p50: 50 * time.Millisecond, p90: 90 * time.Millisecond, p99: 99 * time.Millisecond, mean: 50500 * time.Microsecond}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestHistogramDifferenceAndP99Bound(t *testing.T) {
	bounds := []float64{0.005, 0.025, 0.1}
	before := histograms{"mutate": {count: 10, sum: 0.02, bounds: bounds, counts: []uint64{10, 10, 10}}}
	after := histograms{
		"mutate":   {count: 110, sum: 0.52, bounds: bounds, counts: []uint64{105, 109, 110}},
		"validate": {count: 5, sum: 0.01, bounds: bounds, counts: []uint64{5, 5, 5}},
	}
	d := after.plus(before, -1)
	m := d["mutate"]
	if m.count != 100 || m.mean() != 5*time.Millisecond {
		t.Errorf("mutate: %d calls, mean %s; want 100 calls, mean 5ms", m.count, m.mean())
	}
	// 95 calls took up to 5 ms, 99 up to 25 ms: the 99th lies in the second bucket.
	if bound, ok := m.p99Bound(); !ok || bound != 25*time.Millisecond {
		t.Errorf("p99 bound = %s (ok %v), want 25ms", bound, ok)
	}
	if v := d["validate"]; v.count != 5 {
		t.Errorf("a series missing before counts from zero: %d calls, want 5", v.count)
	}
	if got := d.total("mutate", "validate", "absent").count; got != 105 {
		t.Errorf("total = %d, want 105", got)
	}

	slow := histogram{count: 100, bounds: bounds, counts: []uint64{0, 0, 50}}
	if bound, ok := slow.p99Bound(); ok || bound != 100*time.Millisecond {
		t.Errorf("p99 above the last bound: got %s (ok %v), want > 100ms", bound, ok)
	}
}

func TestThroughputIsTheWorkersOverTheMeanLatency(t *testing.T) {
	r := &report{results: &results{
		phases: []phase{{"concurrent (8 workers)", 8}},
		byRun:  [][]result{{{latencies: []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}}}},
	}}
	// Eight workers, each waiting 20 ms on average: 400 creates a second.
	if got := r.throughput(0, 0); got != 400 {
		t.Errorf("throughput = %v, want 400", got)
	}
}
