package main

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
)

// measurement runs the timed creates.
type measurement struct {
	client  kubernetes.Interface
	setups  []*setup
	workers int
}

// phase is a way of sending the creates: one after another, or from
// concurrent workers.
type phase struct {
	name    string
	workers int
}

func (m *measurement) phases() []phase {
	return []phase{{"sequential", 1}, {fmt.Sprintf("concurrent (%d workers)", m.workers), m.workers}}
}

// result is what one set-up did in one phase, over all rounds.
type result struct {
	latencies []time.Duration
	// metrics are the API server's admission metrics over the same creates.
	metrics admissionMetrics
}

// results holds a result per phase and set-up.
type results struct {
	phases []phase
	setups []*setup
	byRun  [][]result // [phase][set-up]
}

// run creates the given number of DaemonSets per set-up and phase, spread
// over rounds. Each round starts every phase with the next set-up, so that
// with as many rounds as set-ups each runs once first, once last, and the API
// server's drift (caches, compaction, the garbage collector's backlog)
// favours none.
func (m *measurement) run(ctx context.Context, creates, rounds int) (*results, error) {
	res := &results{phases: m.phases(), setups: m.setups, byRun: make([][]result, len(m.phases()))}
	for p := range res.byRun {
		res.byRun[p] = make([]result, len(m.setups))
	}
	for round := range rounds {
		n := creates / rounds
		if round < creates%rounds {
			n++
		}
		for p, ph := range res.phases {
			for k := range m.setups {
				i := (round + k) % len(m.setups)
				s := m.setups[i]
				before, err := scrape(ctx, m.client)
				if err != nil {
					return nil, err
				}
				latencies, err := m.creates(ctx, s, fmt.Sprintf("r%d-p%d", round, p), n, ph.workers)
				if err != nil {
					return nil, fmt.Errorf("set-up %s, %s: %w", s.name, ph.name, err)
				}
				after, err := scrape(ctx, m.client)
				if err != nil {
					return nil, err
				}
				r := &res.byRun[p][i]
				r.latencies = append(r.latencies, latencies...)
				r.metrics = r.metrics.plus(after.minus(before), +1)
				if err := m.clear(ctx, s); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}

// creates makes n DaemonSets in the set-up's namespace from the given number
// of workers and returns how long each Create call took.
func (m *measurement) creates(ctx context.Context, s *setup, prefix string, n, workers int) ([]time.Duration, error) {
	// Built before the clock starts: only the API call is timed.
	objects := make([]*appsv1.DaemonSet, n)
	for i := range objects {
		objects[i] = daemonSet(s.namespace, fmt.Sprintf("fluent-bit-%s-%04d", prefix, i))
	}
	latencies := make([]time.Duration, n)
	err := bench.ForEach(ctx, n, workers, func(ctx context.Context, i int) error {
		start := time.Now()
		_, err := m.client.AppsV1().DaemonSets(s.namespace).Create(ctx, objects[i], metav1.CreateOptions{})
		latencies[i] = time.Since(start)
		if err != nil {
			return fmt.Errorf("creating DaemonSet %s/%s: %w", s.namespace, objects[i].Name, err)
		}
		return nil
	})
	return latencies, err
}

// clear deletes the set-up's DaemonSets and waits until they and their
// ControllerRevisions are gone, so that the garbage collector's work does not
// fall into the next measurement.
func (m *measurement) clear(ctx context.Context, s *setup) error {
	background := metav1.DeletePropagationBackground
	if err := m.client.AppsV1().DaemonSets(s.namespace).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("deleting the DaemonSets of set-up %s: %w", s.name, err)
	}
	one := metav1.ListOptions{Limit: 1}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		daemonSets, err := m.client.AppsV1().DaemonSets(s.namespace).List(ctx, one)
		if err != nil {
			return false, err
		}
		revisions, err := m.client.AppsV1().ControllerRevisions(s.namespace).List(ctx, one)
		if err != nil {
			return false, err
		}
		return len(daemonSets.Items) == 0 && len(revisions.Items) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the DaemonSets of set-up %s to be gone: %w", s.name, err)
	}
	return nil
}
