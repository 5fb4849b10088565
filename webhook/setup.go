// Package webhook serves daemonset-guard's mutating and validating admission
// webhooks for apps/v1 DaemonSets on a controller-runtime manager: it wires the
// policy, the node inventory and the rules to the two webhook paths.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/daemonset-guard/daemonset-guard/internal/informed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/namespaces"
	"github.com/daemonset-guard/daemonset-guard/webhook/nodechange"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Options configure the webhooks.
type Options struct {
	// PolicyFile is the policy to load and watch; empty means the built-in policy.
	PolicyFile string
	// Rules are the rules the webhooks run and the policy configures; nil
	// means rules.Builtin().
	Rules *rules.Catalog
	// Log receives one line per decision and the policy reloads.
	Log logr.Logger
	// Registerer receives the metrics; nil means controller-runtime's
	// registry, which the manager serves on its metrics endpoint.
	Registerer prometheus.Registerer
	// RequestTimeout bounds reading a request and writing its answer;
	// zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// AuditInterval, when positive, makes the leader write every
	// DaemonSet's report on that interval, in ReportFormat.
	AuditInterval time.Duration
	ReportFormat  reports.Format
}

// CacheOptions returns the manager cache options the webhooks rely on: Nodes,
// PriorityClasses, Namespaces and DaemonSets are stripped to what the rules
// read before they enter the cache. Nodes are stored as inventory.Nodes and
// DaemonSets as nodechange.DaemonSets, so the manager's client cannot read
// either from its cache: read Nodes from the inventory, and DaemonSets from
// the API server.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Node{}:                {Transform: inventory.NewNodeStripper().Strip},
			&schedulingv1.PriorityClass{}: {Transform: priorityclass.Strip},
			&appsv1.DaemonSet{}:           {Transform: nodechange.StripDaemonSet},
			&corev1.Namespace{}:           {Transform: namespaces.Strip},
		},
	}
}

// Setup loads the policy and registers the node inventory, the PriorityClass
// and namespace views, the node-change re-evaluation, the policy watcher, the readiness checks and both webhook paths on
// the manager, whose cache must have been built with CacheOptions. It returns a function that reports
// whether the webhooks can answer: the inventory has synced and the server
// completes a TLS handshake.
func Setup(ctx context.Context, mgr manager.Manager, opts Options) (ready func() error, err error) {
	if opts.Rules == nil {
		opts.Rules = rules.Builtin()
	}
	pol := policy.Default(opts.Rules)
	if opts.PolicyFile != "" {
		if pol, err = policy.Load(opts.PolicyFile, opts.Rules); err != nil {
			return nil, err
		}
	}
	store := policy.NewStore(pol)

	// The manager's cache shares one informer per kind among its users.
	informerOf := func(obj client.Object) func(context.Context) (informed.Informer, error) {
		return func(ctx context.Context) (informed.Informer, error) {
			informer, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false))
			if err != nil {
				return nil, fmt.Errorf("creating the %T informer: %w", obj, err)
			}
			return informer, nil
		}
	}
	// Only the inventory is a readiness condition: until the others have
	// synced, priority-class answers as it does offline, from the system
	// classes, and namespace-placement says that it did not check.
	inv, classes, spaces := inventory.New(), priorityclass.New(), namespaces.New()
	for _, view := range []struct {
		obj  client.Object
		view interface{ Attach(informed.Informer) error }
	}{{&corev1.Node{}, inv}, {&schedulingv1.PriorityClass{}, classes}, {&corev1.Namespace{}, spaces}} {
		informer, err := informerOf(view.obj)(ctx)
		if err != nil {
			return nil, err
		}
		if err := view.view.Attach(informer); err != nil {
			return nil, fmt.Errorf("watching %T: %w", view.obj, err)
		}
	}
	if err := mgr.Add(EveryReplica(manager.RunnableFunc(func(ctx context.Context) error {
		informed.ReleaseAfterSync(ctx, inv.Synced, classes.Synced, spaces.Synced)
		return nil
	}))); err != nil {
		return nil, fmt.Errorf("adding the release of the initial lists: %w", err)
	}
	if opts.Registerer == nil {
		opts.Registerer = ctrlmetrics.Registry
	}
	metrics, err := NewMetrics(opts.Registerer, inv, opts.Rules.Names())
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}

	if opts.PolicyFile != "" {
		watcher := &policy.Watcher{Path: opts.PolicyFile, Store: store, Catalog: opts.Rules, Reloaded: metrics.PolicyReloaded, Log: opts.Log.WithName("policy")}
		if err := mgr.Add(EveryReplica(manager.RunnableFunc(watcher.Start))); err != nil {
			return nil, fmt.Errorf("adding the policy watcher: %w", err)
		}
	}
	// The leader's, created only once it leads.
	reevaluator := &nodechange.Reevaluator{Nodes: inv, Policy: store, Recorder: mgr.GetEventRecorder("daemonset-guard"), Eligible: metrics.eligible,
		Log: opts.Log.WithName("node-change"), NodeInformer: informerOf(&corev1.Node{}), DaemonSetInformer: informerOf(&appsv1.DaemonSet{})}
	if err := mgr.Add(reevaluator); err != nil {
		return nil, fmt.Errorf("adding the node-change re-evaluation: %w", err)
	}
	if opts.AuditInterval > 0 {
		client, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return nil, err
		}
		reportsClient, err := dynamic.NewForConfig(mgr.GetConfig())
		if err != nil {
			return nil, err
		}
		// Workloads stay unknown, as at admission: selector-overlap is
		// audit's alone.
		evaluator := func() offline.Evaluator {
			return offline.Evaluator{Rules: opts.Rules, Policy: store.Get(), Nodes: inv, PriorityClasses: classes, Namespaces: spaces}
		}
		auditor := &reports.Auditor{Interval: opts.AuditInterval, Client: client, Reports: reportsClient, Format: opts.ReportFormat, Evaluator: evaluator,
			Ready: inv.Synced, Log: opts.Log.WithName("reports")}
		if err := mgr.Add(auditor); err != nil {
			return nil, fmt.Errorf("adding the audit: %w", err)
		}
	}

	inventorySynced := func(*http.Request) error {
		if !inv.Synced() {
			return errors.New("the node inventory has not synced yet")
		}
		return nil
	}
	if err := mgr.AddReadyzCheck("node-inventory", inventorySynced); err != nil {
		return nil, fmt.Errorf("adding the inventory readiness check: %w", err)
	}
	server := mgr.GetWebhookServer()
	// The check completes a TLS handshake, so it also fails until a serving
	// certificate is loaded.
	serverStarted := server.StartedChecker()
	if err := mgr.AddReadyzCheck("webhook-server", serverStarted); err != nil {
		return nil, fmt.Errorf("adding the webhook readiness check: %w", err)
	}

	mutator, validator := newHandlers(handler{rules: opts.Rules, policy: store, nodes: inv, classes: classes, namespaces: spaces, metrics: metrics}, opts.Log)
	timeout := opts.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	for path, h := range routes(mutator, validator, timeout) {
		server.Register(path, h)
	}
	return func() error { return errors.Join(inventorySynced(nil), serverStarted(nil)) }, nil
}

// EveryReplica marks a runnable that every replica runs, whether it leads
// or not: without the mark, a manager with leader election runs it on the
// leader only.
func EveryReplica(r manager.Runnable) manager.Runnable { return everyReplica{r} }

type everyReplica struct{ manager.Runnable }

func (everyReplica) NeedLeaderElection() bool { return false }

func newHandlers(h handler, log logr.Logger) (*Mutator, *Validator) {
	mutator, validator := &Mutator{h}, &Validator{h}
	mutator.log = log.WithName("mutate")
	validator.log = log.WithName("validate")
	return mutator, validator
}
