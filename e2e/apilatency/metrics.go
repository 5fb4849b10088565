package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

// The API server's admission metrics apilatency reads.
const (
	// Whole admission steps (admit: all mutating plugins; validate: all
	// validating plugins), by type.
	stepMetric = "apiserver_admission_step_admission_duration_seconds"
	// Each admission plugin, by name: MutatingAdmissionWebhook,
	// MutatingAdmissionPolicy and so on.
	pluginMetric = "apiserver_admission_controller_admission_duration_seconds"
	// Each webhook call, by webhook name.
	webhookMetric = "apiserver_admission_webhook_admission_duration_seconds"
	// Evaluations of mutating admission policies, by policy name.
	mutatingPolicyMetric = "apiserver_mutating_admission_policy_check_duration_seconds"
	// Evaluations of validating admission policies. Kubernetes 1.37 observes
	// only those that deny, warn or err, and labels a validation that is
	// false as it labels an error (invalid_error): the ValidatingAdmissionPolicy
	// plugin's time is what measures the evaluations that pass.
	validatingPolicyMetric = "apiserver_validating_admission_policy_check_duration_seconds"
)

// histogram is a Prometheus histogram, summed over one or more series.
type histogram struct {
	count  uint64
	sum    float64
	bounds []float64 // bucket upper bounds, ascending
	counts []uint64  // cumulative count at each bound
}

func fromDTO(h *dto.Histogram) histogram {
	out := histogram{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, b.GetCumulativeCount())
	}
	return out
}

// plus returns h+o, or h-o with sign -1. Series of one metric share their
// buckets; a series missing on one side counts as empty.
func (h histogram) plus(o histogram, sign int) histogram {
	if h.bounds == nil {
		h.bounds, h.counts = o.bounds, make([]uint64, len(o.counts))
	} else {
		h.counts = append([]uint64(nil), h.counts...)
	}
	add := func(a, b uint64) uint64 {
		if sign < 0 {
			return a - b
		}
		return a + b
	}
	h.count = add(h.count, o.count)
	h.sum += float64(sign) * o.sum
	for i := range o.counts {
		h.counts[i] = add(h.counts[i], o.counts[i])
	}
	return h
}

// mean is the average observation.
func (h histogram) mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return seconds(h.sum / float64(h.count))
}

// p99Bound returns the upper bound of the bucket holding the 99th
// percentile. The API server's buckets are coarse (webhooks: 5 ms, 25 ms,
// ...; CEL: 0.5 µs, 1 ms, 10 ms, ...), and interpolating inside one, as
// histogram_quantile does, would invent precision: the bound is what the
// buckets actually say. ok is false when the percentile lies above the last
// bound.
func (h histogram) p99Bound() (bound time.Duration, ok bool) {
	rank := uint64(math.Ceil(0.99 * float64(h.count)))
	for i, c := range h.counts {
		if c >= rank {
			return seconds(h.bounds[i]), true
		}
	}
	return seconds(h.bounds[len(h.bounds)-1]), false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// histograms are summed histograms by the value of one label.
type histograms map[string]histogram

func (hs histograms) plus(o histograms, sign int) histograms {
	out := maps.Clone(hs)
	if out == nil {
		out = histograms{}
	}
	for k, h := range o {
		out[k] = out[k].plus(h, sign)
	}
	return out
}

// total sums the histograms of the given keys.
func (hs histograms) total(keys ...string) histogram {
	var t histogram
	for _, k := range keys {
		if h, ok := hs[k]; ok {
			t = t.plus(h, +1)
		}
	}
	return t
}

// sumBy sums the family's series that match by the value of label key.
func sumBy(family *dto.MetricFamily, key string, match func(labels map[string]string) bool) histograms {
	out := histograms{}
	for _, m := range family.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetHistogram() == nil || !match(labels) {
			continue
		}
		out[labels[key]] = out[labels[key]].plus(fromDTO(m.GetHistogram()), +1)
	}
	return out
}

// admissionMetrics are the API server's admission histograms that matter
// here, at one moment or as the difference between two.
type admissionMetrics struct {
	steps        histograms // admission steps of CREATE requests, by type
	plugins      histograms // admission plugins on CREATE requests, by name
	webhooks     histograms // webhook calls, by webhook name
	mutating     histograms // mutating policy evaluations, by policy name
	mutatingErrs histograms // mutating policy evaluations that erred, by policy name
	validating   histograms // validating policy evaluations that denied, warned or erred, by policy name
}

// scrape reads the API server's admission metrics from its /metrics.
func scrape(ctx context.Context, client kubernetes.Interface) (admissionMetrics, error) {
	raw, err := client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return admissionMetrics{}, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	families, err := bench.ParseMetrics(bytes.NewReader(raw), stepMetric, pluginMetric, webhookMetric, mutatingPolicyMetric, validatingPolicyMetric)
	if err != nil {
		return admissionMetrics{}, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	create := func(l map[string]string) bool { return l["operation"] == "CREATE" }
	all := func(map[string]string) bool { return true }
	erred := func(l map[string]string) bool { return l["error_type"] != "no_error" }
	return admissionMetrics{
		steps:        sumBy(families[stepMetric], "type", create),
		plugins:      sumBy(families[pluginMetric], "name", create),
		webhooks:     sumBy(families[webhookMetric], "name", all),
		mutating:     sumBy(families[mutatingPolicyMetric], "policy", all),
		mutatingErrs: sumBy(families[mutatingPolicyMetric], "policy", erred),
		validating:   sumBy(families[validatingPolicyMetric], "policy", all),
	}, nil
}

// plus returns m+o, or m-o with sign -1.
func (m admissionMetrics) plus(o admissionMetrics, sign int) admissionMetrics {
	return admissionMetrics{
		steps:        m.steps.plus(o.steps, sign),
		plugins:      m.plugins.plus(o.plugins, sign),
		webhooks:     m.webhooks.plus(o.webhooks, sign),
		mutating:     m.mutating.plus(o.mutating, sign),
		mutatingErrs: m.mutatingErrs.plus(o.mutatingErrs, sign),
		validating:   m.validating.plus(o.validating, sign),
	}
}

// minus returns what happened between the scrape o and the scrape m.
func (m admissionMetrics) minus(o admissionMetrics) admissionMetrics { return m.plus(o, -1) }
