package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

// soakConfig is a bounded soak: a steady request rate for a duration, with
// the webhook's own metrics sampled at each interval.
type soakConfig struct {
	url         string
	roots       *x509.CertPool
	bodies      [][]byte
	connections int
	rate        float64
	duration    time.Duration
	interval    time.Duration
	metricsURL  string
}

// sample is what one interval of a soak saw.
type sample struct {
	result
	rssMiB, heapMiB float64
	goroutines      float64
}

// How much a soak may drift between its first and its last quarter before it
// counts as a leak: some growth is the heap finding its working size.
const (
	soakHeapGrowth       = 1.25
	soakRSSGrowth        = 1.25
	soakGoroutinesGrowth = 10
)

// soak sends requests at a steady rate through a fixed pool of connections,
// prints each interval's latencies and the webhook's memory and goroutines,
// and fails on any error, on requests it could not send on time, and on
// memory or goroutines that keep growing.
func soak(out io.Writer, cfg soakConfig) error {
	if cfg.interval <= 0 || cfg.duration < 4*cfg.interval {
		return errors.New("a soak needs --duration of at least four --interval")
	}
	work := make(chan []byte, cfg.connections)
	var mu sync.Mutex
	var current result
	var workers sync.WaitGroup
	for range cfg.connections {
		workers.Go(func() {
			c := newCaller(cfg.url, cfg.roots)
			for body := range work {
				took, allowed, err := c.send(body)
				mu.Lock()
				current.add(took, allowed, err)
				mu.Unlock()
			}
		})
	}

	fmt.Fprintf(out, "%-8s %8s %9s %9s %9s %7s %8s %9s %10s\n", "elapsed", "req/s", "p50", "p99", "max", "errors", "RSS MiB", "heap MiB", "goroutines")
	var samples []sample
	late := 0
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	report := time.NewTicker(cfg.interval)
	start := time.Now()
	for sent := 0; time.Since(start) < cfg.duration; {
		select {
		case <-tick.C:
			select {
			case work <- cfg.bodies[sent%len(cfg.bodies)]:
				sent++
			default:
				late++ // every connection is busy: the rate is not being held
			}
		case <-report.C:
			mu.Lock()
			s := sample{result: current}
			current = result{}
			mu.Unlock()
			slices.Sort(s.latencies)
			s.rate = float64(len(s.latencies)) / cfg.interval.Seconds()
			if err := s.scrape(cfg.metricsURL); err != nil {
				return err
			}
			samples = append(samples, s)
			fmt.Fprintf(out, "%-8s %8.0f %9s %9s %9s %7d %8.1f %9.1f %10.0f\n", time.Since(start).Round(time.Second),
				s.rate, s.percentile(50), s.percentile(99), s.percentile(100), s.errors, s.rssMiB, s.heapMiB, s.goroutines)
		}
	}
	tick.Stop()
	report.Stop()
	close(work)
	workers.Wait()
	return judge(out, samples, late)
}

// scrape reads the webhook's resident memory, heap in use and goroutines.
func (s *sample) scrape(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("reading the webhook's metrics: %w", err)
	}
	defer resp.Body.Close()
	families, err := bench.ParseMetrics(resp.Body)
	if err != nil {
		return err
	}
	gauge := func(name string) (float64, error) {
		f, ok := families[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0, fmt.Errorf("the webhook's metrics have no %s", name)
		}
		return f.GetMetric()[0].GetGauge().GetValue(), nil
	}
	var errs [3]error
	var rss, heap float64
	rss, errs[0] = gauge("process_resident_memory_bytes")
	heap, errs[1] = gauge("go_memstats_heap_inuse_bytes")
	s.goroutines, errs[2] = gauge("go_goroutines")
	s.rssMiB, s.heapMiB = rss/(1<<20), heap/(1<<20)
	return errors.Join(errs[:]...)
}

// judge compares the second quarter of the soak (the first is warm-up) with
// the last, and counts errors and late requests over the whole soak.
func judge(out io.Writer, samples []sample, late int) error {
	quarter := len(samples) / 4
	mean := func(part []sample, value func(sample) float64) float64 {
		sum := 0.0
		for _, s := range part {
			sum += value(s)
		}
		return sum / float64(len(part))
	}
	early, last := samples[quarter:2*quarter], samples[len(samples)-quarter:]
	var all result
	for _, s := range samples {
		all.merge(s.result)
	}
	slices.Sort(all.latencies)
	rss := mean(last, func(s sample) float64 { return s.rssMiB }) / mean(early, func(s sample) float64 { return s.rssMiB })
	heap := mean(last, func(s sample) float64 { return s.heapMiB }) / mean(early, func(s sample) float64 { return s.heapMiB })
	goroutines := mean(last, func(s sample) float64 { return s.goroutines }) - mean(early, func(s sample) float64 { return s.goroutines })
	fmt.Fprintf(out, "\n%d requests: p50 %s, p99 %s, max %s; %d errors, %d not sent on time\n",
		len(all.latencies), all.percentile(50), all.percentile(99), all.percentile(100), all.errors, late)
	fmt.Fprintf(out, "last quarter vs second quarter: RSS %.2fx, heap %.2fx, goroutines %+.0f\n", rss, heap, goroutines)
	var problems []error
	if all.errors > 0 {
		problems = append(problems, fmt.Errorf("%d requests failed", all.errors))
	}
	if late > 0 {
		problems = append(problems, fmt.Errorf("%d requests could not be sent on time: the webhook did not keep up with the rate", late))
	}
	if rss > soakRSSGrowth || heap > soakHeapGrowth || goroutines > soakGoroutinesGrowth {
		problems = append(problems, fmt.Errorf("memory or goroutines kept growing (limits: RSS and heap %.2fx, goroutines +%d)", soakRSSGrowth, soakGoroutinesGrowth))
	}
	return errors.Join(problems...)
}
