package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	steady := func(rss, heap, goroutines float64) sample {
		return sample{result: result{latencies: []time.Duration{time.Millisecond}}, rssMiB: rss, heapMiB: heap, goroutines: goroutines}
	}
	flat := []sample{steady(30, 10, 40), steady(40, 14, 52), steady(41, 15, 52), steady(40, 14, 53), steady(42, 15, 52), steady(41, 14, 52), steady(42, 15, 52), steady(41, 14, 52)}
	leaking := []sample{steady(30, 10, 40), steady(40, 14, 52), steady(45, 18, 60), steady(50, 22, 70), steady(55, 26, 80), steady(60, 30, 90), steady(65, 34, 100), steady(70, 38, 110)}
	failed := append([]sample(nil), flat...)
	failed[5].errors = 2
	for _, tc := range []struct {
		name    string
		samples []sample
		late    int
		want    string
	}{
		{name: "passes a soak whose memory and goroutines level off after warm-up", samples: flat},
		{name: "fails a soak whose heap and goroutines keep growing", samples: leaking, want: "kept growing"},
		{name: "fails a soak with a failed request", samples: failed, want: "2 requests failed"},
		{name: "fails a soak that could not hold its rate", samples: flat, late: 3, want: "3 requests could not be sent on time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := judge(io.Discard, tc.samples, tc.late)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("judge() = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("judge() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
