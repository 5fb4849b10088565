package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

// stats summarises the latencies of one set-up in one phase.
type stats struct {
	n                   int
	p50, p90, p99, mean time.Duration
}

func summarize(latencies []time.Duration) stats {
	sorted := slices.Sorted(slices.Values(latencies))
	if len(sorted) == 0 {
		return stats{}
	}
	var total time.Duration
	for _, l := range sorted {
		total += l
	}
	return stats{n: len(sorted), p50: bench.Percentile(sorted, 50), p90: bench.Percentile(sorted, 90), p99: bench.Percentile(sorted, 99),
		mean: total / time.Duration(len(sorted))}
}

// report prints and records a run's results.
type report struct {
	*results
	creates, rounds int
	objectSize      int
	elapsed         time.Duration
}

// stats returns the client-side latencies of a set-up in a phase.
func (r *report) stats(phase, setup int) stats { return summarize(r.byRun[phase][setup].latencies) }

// added returns what a set-up adds over no admission to the p50 and the p99.
func (r *report) added(phase, setup int) (p50, p99 time.Duration) {
	s, base := r.stats(phase, setup), r.stats(phase, noAdmission)
	return s.p50 - base.p50, s.p99 - base.p99
}

// perCreate divides the API server's seconds in a histogram by the set-up's
// creates in the phase.
func (r *report) perCreate(phase, setup int, h histogram) time.Duration {
	n := len(r.byRun[phase][setup].latencies)
	if n == 0 {
		return 0
	}
	return seconds(h.sum / float64(n))
}

// admissionPerCreate is the API server's time in both admission steps per
// create.
func (r *report) admissionPerCreate(phase, setup int) time.Duration {
	return r.perCreate(phase, setup, r.byRun[phase][setup].metrics.steps.total("admit", "validate"))
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "DaemonSet creates through the API server: %d per set-up and phase, in %d rounds that rotate the set-ups' order (%s)\n",
		r.creates, r.rounds, r.elapsed.Round(time.Second))
	fmt.Fprintf(out, "DaemonSet: fluent-bit, %.1f KB of JSON, selecting no node\n\n", float64(r.objectSize)/1024)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "phase\tset-up\tcreates\tp50\tp90\tp99\tmean\tadded p50\tadded p99")
	for p, ph := range r.phases {
		for i, s := range r.setups {
			st := r.stats(p, i)
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s", ph.name, s.name, st.n, ms(st.p50), ms(st.p90), ms(st.p99), ms(st.mean))
			if i != noAdmission {
				a50, a99 := r.added(p, i)
				fmt.Fprintf(w, "\t%s\t%s", signedMS(a50), signedMS(a99))
			}
			fmt.Fprintln(w)
		}
	}
	w.Flush()
	for _, against := range []struct {
		setup int
		goal  string
	}{{celPolicies, "goal for p50: <= 1.0x"}, {minimalWebhookSetup, "goal for p50: <= 0.8x"}} {
		fmt.Fprintf(out, "\nWhat daemonset-guard adds / what the %s adds, over no admission (%s)\n", r.setups[against.setup].name, against.goal)
		for p, ph := range r.phases {
			w50, w99 := r.added(p, daemonsetGuard)
			b50, b99 := r.added(p, against.setup)
			fmt.Fprintf(out, "  %s: p50 %s, p99 %s\n", ph.name, bench.Ratio(float64(w50), float64(b50)), bench.Ratio(float64(w99), float64(b99)))
		}
	}
	last := len(r.phases) - 1
	fmt.Fprintf(out, "\nCreates per second, %s: daemonset-guard %.0f, CEL %.0f (goal: at least CEL's)\n", r.phases[last].name,
		r.throughput(last, daemonsetGuard), r.throughput(last, celPolicies))

	fmt.Fprintln(out, "\nTime inside the API server per create (seconds summed by its admission histograms / creates)")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "phase\tset-up\tadmit step\tvalidate step\twebhook plugins\tpolicy plugins\tadded over none")
	for p, ph := range r.phases {
		for i, s := range r.setups {
			m := r.byRun[p][i].metrics
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s", ph.name, s.name,
				ms(r.perCreate(p, i, m.steps["admit"])), ms(r.perCreate(p, i, m.steps["validate"])),
				ms(r.perCreate(p, i, m.plugins.total("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"))),
				ms(r.perCreate(p, i, m.plugins.total("MutatingAdmissionPolicy", "ValidatingAdmissionPolicy"))))
			if i != noAdmission {
				fmt.Fprintf(w, "\t%s", signedMS(r.admissionPerCreate(p, i)-r.admissionPerCreate(p, noAdmission)))
			}
			fmt.Fprintln(w)
		}
	}
	w.Flush()

	var total admissionMetrics
	for _, byPhase := range r.byRun {
		for _, res := range byPhase {
			total = total.plus(res.metrics, +1)
		}
	}
	fmt.Fprintln(out, "\nEach webhook call and mutating policy evaluation, over all measured creates (API server histograms)")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "kind\tname\tcalls\tmean\tp99 (bucket bound)\terrors")
	for _, kind := range []struct {
		name         string
		calls, erred histograms
	}{{"webhook", total.webhooks, nil}, {"mutating policy", total.mutating, total.mutatingErrs}} {
		for _, name := range slices.Sorted(maps.Keys(kind.calls)) {
			h := kind.calls[name]
			errs := "-"
			if kind.erred != nil {
				errs = fmt.Sprint(kind.erred[name].count)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", kind.name, name, h.count, ms(h.mean()), p99(h), errs)
		}
	}
	w.Flush()
	fmt.Fprintf(out, "Validating policy evaluations that denied, warned or erred (the only ones Kubernetes 1.37 observes; 0 expected): %d\n",
		total.validating.total(slices.Collect(maps.Keys(total.validating))...).count)
	fmt.Fprintln(out, "\nNot in the CEL set-up, because CEL admission sees no Nodes: targets-nodes (on which nodes the pods would run),")
	fmt.Fprintln(out, "and the rollout budget counted in targeted nodes (CEL compares only a percentage maxUnavailable with 50%).")
}

// throughput is the creates per second of a set-up in a phase: its
// workers, each waiting for one create at a time, over the mean latency.
func (r *report) throughput(phase, setup int) float64 {
	st := r.stats(phase, setup)
	if st.mean == 0 {
		return 0
	}
	return float64(r.phases[phase].workers) / st.mean.Seconds()
}

// rows returns the README's bench table rows: what daemonset-guard adds next
// to what CEL and the minimal webhook add, each over no admission, and the
// concurrent throughput next to CEL's.
func (r *report) rows() []bench.Row {
	var rows []bench.Row
	for _, against := range []struct {
		setup int
		name  string
		goal  string
	}{{celPolicies, "CEL", "goal p50 ≤ 1.0x"}, {minimalWebhookSetup, "a minimal controller-runtime webhook", "goal p50 ≤ 0.8x"}} {
		for p, ph := range r.phases {
			w50, w99 := r.added(p, daemonsetGuard)
			b50, b99 := r.added(p, against.setup)
			for _, q := range []struct {
				name          string
				webhook, base time.Duration
				goal          string
			}{{"p50", w50, b50, "; " + against.goal}, {"p99", w99, b99, ""}} {
				rows = append(rows, bench.Row{
					Measurement: fmt.Sprintf("API create %s, %s, daemonset-guard vs %s (added over no admission%s)", q.name, ph.name, against.name, q.goal),
					Value:       signedMS(q.webhook), Baseline: signedMS(q.base), Ratio: bench.Ratio(float64(q.webhook), float64(q.base)),
				})
			}
		}
	}
	last := len(r.phases) - 1
	w, c := r.throughput(last, daemonsetGuard), r.throughput(last, celPolicies)
	rows = append(rows, bench.Row{
		Measurement: fmt.Sprintf("API creates per second, %s, daemonset-guard vs CEL (goal ≥ 1.0x)", r.phases[last].name),
		Value:       fmt.Sprintf("%.0f/s", w), Baseline: fmt.Sprintf("%.0f/s", c), Ratio: bench.Ratio(w, c),
	})
	for p, ph := range r.phases {
		base := r.admissionPerCreate(p, noAdmission)
		webhook, cel := r.admissionPerCreate(p, daemonsetGuard)-base, r.admissionPerCreate(p, celPolicies)-base
		rows = append(rows, bench.Row{
			Measurement: fmt.Sprintf("API server admission time per create, %s, daemonset-guard vs CEL (added over no admission)", ph.name),
			Value:       signedMS(webhook), Baseline: signedMS(cel), Ratio: bench.Ratio(float64(webhook), float64(cel)),
		})
	}
	return rows
}

// p99 formats the bound of the histogram's bucket that holds its 99th
// percentile.
func p99(h histogram) string {
	if h.count == 0 {
		return "-"
	}
	bound, ok := h.p99Bound()
	if !ok {
		return "> " + ms(bound)
	}
	return "<= " + ms(bound)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
}
