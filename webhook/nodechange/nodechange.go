// Package nodechange re-evaluates where every DaemonSet runs when the
// cluster's nodes change, and reports on the DaemonSet, as a Kubernetes Event,
// one that a change leaves with no node to run on or with far fewer: a node
// pool relabelled or tainted after the DaemonSet was admitted, which no
// admission check sees. It runs on the leader only, so each finding is
// reported once.
package nodechange

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"

	"github.com/daemonset-guard/daemonset-guard/internal/informed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Defaults of Reevaluator's timing.
const (
	// DefaultSettle is how long nodes must stay unchanged before the
	// DaemonSets are re-evaluated: a relabel of a pool is many node
	// updates, and is judged once, as one change.
	DefaultSettle = 2 * time.Second
	// DefaultMaxDelay bounds the wait for a cluster whose nodes never stop
	// changing.
	DefaultMaxDelay = 30 * time.Second
)

// Nodes is the view of the nodes the re-evaluation needs.
// *inventory.Inventory implements it.
type Nodes interface {
	Synced() bool
	Coverage(spec *corev1.PodSpec) (inventory.Coverage, error)
}

// Reevaluator re-evaluates the DaemonSets when nodes change. Start it on the
// leader, with informers on Nodes and DaemonSets.
type Reevaluator struct {
	Nodes    Nodes
	Policy   *policy.Store
	Recorder events.EventRecorder
	// Eligible is the gauge of each DaemonSet's eligible nodes, labelled
	// namespace and name.
	Eligible *prometheus.GaugeVec
	Log      logr.Logger
	// NodeInformer and DaemonSetInformer return the informers, which
	// Start creates only once it leads.
	NodeInformer, DaemonSetInformer func(ctx context.Context) (informed.Informer, error)
	// Settle and MaxDelay default to DefaultSettle and DefaultMaxDelay.
	Settle, MaxDelay time.Duration

	mu sync.Mutex
	// daemonSets are the informer's objects by UID; they are shared with
	// its store and never changed.
	daemonSets map[types.UID]*tracked
	// deleted holds the last state of each node deleted since the last
	// evaluation, to tell nodes that went away from those that stayed and
	// became ineligible.
	deleted map[string]*inventory.Node
	changed chan struct{}
}

// tracked is one DaemonSet and where it ran at the last evaluation.
type tracked struct {
	ds *DaemonSet
	// eligible is the number of nodes it was eligible on at the last
	// evaluation; -1 until it has been evaluated.
	eligible int
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader reports, so that each Event is made once.
func (*Reevaluator) NeedLeaderElection() bool { return true }

// Start watches nodes and DaemonSets until ctx is done.
func (r *Reevaluator) Start(ctx context.Context) error {
	r.daemonSets = map[types.UID]*tracked{}
	r.deleted = map[string]*inventory.Node{}
	r.changed = make(chan struct{}, 1)
	nodes, err := r.NodeInformer(ctx)
	if err != nil {
		return fmt.Errorf("getting the node informer: %w", err)
	}
	daemonSets, err := r.DaemonSetInformer(ctx)
	if err != nil {
		return fmt.Errorf("getting the DaemonSet informer: %w", err)
	}
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(_ any, initial bool) { r.nodeChanged(!initial) },
		UpdateFunc: func(old, obj any) { r.nodeChanged(inventory.PlacementChanged(old, obj)) },
		DeleteFunc: r.nodeDeleted,
	}); err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	registration, err := daemonSets.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, _ bool) { r.daemonSetChanged(obj) },
		UpdateFunc: func(_, obj any) { r.daemonSetChanged(obj) },
		DeleteFunc: r.daemonSetDeleted,
	})
	if err != nil {
		return fmt.Errorf("watching DaemonSets: %w", err)
	}
	// The DaemonSet informer starts with leadership, after the others.
	go informed.ReleaseAfterSync(ctx, registration.HasSynced)
	r.run(ctx)
	return nil
}

func (r *Reevaluator) nodeChanged(changed bool) {
	if changed {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
}

func (r *Reevaluator) nodeDeleted(obj any) {
	if n := inventory.NodeOf(informed.Deleted(obj)); n != nil {
		r.mu.Lock()
		r.deleted[n.Name] = n
		r.mu.Unlock()
		r.nodeChanged(true)
	}
}

// daemonSetChanged takes a new or changed DaemonSet as it is: what admission
// said of its placement stands, and only later node changes are reported.
func (r *Reevaluator) daemonSetChanged(obj any) {
	ds := daemonSetOf(obj)
	if ds == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.daemonSets[ds.UID]
	if t == nil {
		t = &tracked{eligible: -1}
		r.daemonSets[ds.UID] = t
	} else if !equality.Semantic.DeepEqual(t.ds.Placement, ds.Placement) {
		t.eligible = -1
	}
	t.ds = ds
	if t.eligible < 0 && r.Nodes.Synced() {
		r.evaluate(t, nil, false)
	}
}

func (r *Reevaluator) daemonSetDeleted(obj any) {
	ds := daemonSetOf(informed.Deleted(obj))
	if ds == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.daemonSets, ds.UID)
	r.Eligible.DeleteLabelValues(ds.Namespace, ds.Name)
}

// run re-evaluates every DaemonSet once the nodes have settled after a
// change, or at the latest MaxDelay after it.
func (r *Reevaluator) run(ctx context.Context) {
	settle, maxDelay := cmp.Or(r.Settle, DefaultSettle), cmp.Or(r.MaxDelay, DefaultMaxDelay)
	// The initial evaluation, once the nodes have synced.
	pending := true
	var first time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			timer.Reset(min(settle, max(0, first.Add(maxDelay).Sub(now))))
		case <-timer.C:
			if !pending {
				continue
			}
			if !r.Nodes.Synced() {
				timer.Reset(settle)
				continue
			}
			pending = false
			r.evaluateAll()
		}
	}
}

// evaluateAll re-evaluates every DaemonSet after a node change.
func (r *Reevaluator) evaluateAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	gone := inventory.New()
	for _, n := range r.deleted {
		gone.OnAdd(n, false)
	}
	clear(r.deleted)
	for _, t := range r.daemonSets {
		r.evaluate(t, gone, true)
	}
}

// evaluate places t's DaemonSet on the nodes, updates its gauge and, to
// report, says what a node change did to it; gone holds the nodes the change
// deleted.
func (r *Reevaluator) evaluate(t *tracked, gone *inventory.Inventory, report bool) {
	ds := t.ds.Object()
	spec := &ds.Spec.Template.Spec
	now, err := r.Nodes.Coverage(spec)
	if err != nil {
		r.Log.Error(err, "re-evaluating placement", "namespace", ds.Namespace, "name", ds.Name)
		return
	}
	r.Eligible.WithLabelValues(ds.Namespace, ds.Name).Set(float64(now.Eligible))
	before := t.eligible
	t.eligible = now.Eligible
	if !report || before < 0 || t.ds.Deleting {
		return
	}
	deleted := 0
	if gone != nil {
		if cov, err := gone.Coverage(spec); err == nil {
			deleted = cov.Eligible
		}
	}
	reason, note := rules.NodeChange(r.Policy.Get(), ds, before, deleted, now)
	if reason == "" {
		return
	}
	// The Events API folds Events of one reason on one object into a
	// series while they keep coming (at most 6 minutes apart), so a relabel
	// that takes minutes makes one Event object. The reference leaves out
	// the resourceVersion, which every status update of the controller
	// changes and which would make each Event a new object: Object has
	// none.
	r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, reason, "NodeChange", "%s", note)
	r.Log.Info("node change", "namespace", ds.Namespace, "name", ds.Name, "reason", reason, "note", note)
}
