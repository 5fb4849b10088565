package offline

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Health is how a DaemonSet runs: what only a running cluster tells, beside
// the prediction of where it should run.
type Health struct {
	// Predicted is how many nodes the current template should run on.
	Predicted int `json:"predicted"`
	// Desired, Scheduled, Ready, Updated, Unavailable and Misscheduled are
	// the DaemonSet controller's counts.
	Desired      int32 `json:"desired"`
	Scheduled    int32 `json:"scheduled"`
	Ready        int32 `json:"ready"`
	Updated      int32 `json:"updated"`
	Unavailable  int32 `json:"unavailable"`
	Misscheduled int32 `json:"misscheduled"`
	// Problems are the health findings, in words.
	Problems []string `json:"problems,omitempty"`
}

// Health compares a stored DaemonSet's status with where its template should
// run on the evaluator's nodes, which must be given.
func (e Evaluator) Health(ds *appsv1.DaemonSet) Health {
	s := ds.Status
	h := Health{
		Desired:      s.DesiredNumberScheduled,
		Scheduled:    s.CurrentNumberScheduled,
		Ready:        s.NumberReady,
		Updated:      s.UpdatedNumberScheduled,
		Unavailable:  s.NumberUnavailable,
		Misscheduled: s.NumberMisscheduled,
	}
	// The counts describe the current generation only once the controller
	// has seen it.
	current := s.ObservedGeneration == ds.Generation
	if cov, err := e.Nodes.Coverage(&ds.Spec.Template.Spec); err != nil {
		h.Problems = append(h.Problems, fmt.Sprintf("placement could not be predicted: %v", err))
	} else if h.Predicted = cov.Eligible; current && int(s.DesiredNumberScheduled) != h.Predicted {
		h.Problems = append(h.Problems, fmt.Sprintf("the controller wants %d pods, daemonset-guard predicts %d", s.DesiredNumberScheduled, h.Predicted))
	}
	if s.CurrentNumberScheduled < s.DesiredNumberScheduled {
		h.Problems = append(h.Problems, fmt.Sprintf("%d of %d pods scheduled", s.CurrentNumberScheduled, s.DesiredNumberScheduled))
	}
	if s.NumberMisscheduled > 0 {
		h.Problems = append(h.Problems, fmt.Sprintf("%d pods run on nodes that should not run them", s.NumberMisscheduled))
	}
	// An OnDelete DaemonSet updates a pod only when someone deletes it.
	rolling := ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType
	if limit, err := rules.MaxUnavailable(ds, int(s.DesiredNumberScheduled)); err == nil && rolling &&
		current && s.UpdatedNumberScheduled < s.DesiredNumberScheduled && s.NumberUnavailable > 0 && int(s.NumberUnavailable) >= limit {
		h.Problems = append(h.Problems, fmt.Sprintf("the rollout waits at its maxUnavailable limit: %d of %d pods updated, %d unavailable", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberUnavailable))
	}
	return h
}
