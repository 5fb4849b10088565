package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/warnings"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// setup is one way of admitting DaemonSets, selected by a namespace.
type setup struct {
	name      string
	namespace string
}

// The set-ups' places in what createNamespaces returns.
const (
	noAdmission = iota
	daemonsetGuard
	celPolicies
	minimalWebhookSetup
)

// Namespace labels that choose a set-up: daemonset-guard's webhooks skip
// namespaces labelled ignoreLabel, the CEL policies' bindings select
// celLabel, the minimal webhook's configurations minimalLabel.
const (
	ignoreLabel  = "daemonset-guard.io/ignore"
	celLabel     = "apilatency.daemonset-guard.io/cel"
	minimalLabel = "apilatency.daemonset-guard.io/minimal"
)

// createNamespaces creates one namespace per set-up. Those created before an
// error are returned with it, to be deleted.
func createNamespaces(ctx context.Context, client kubernetes.Interface) ([]*setup, error) {
	specs := []struct {
		name, prefix string
		labels       map[string]string
	}{
		noAdmission:         {"no admission", "apilatency-none-", map[string]string{ignoreLabel: "true"}},
		daemonsetGuard:      {"daemonset-guard", "apilatency-webhook-", nil},
		celPolicies:         {"CEL", "apilatency-cel-", map[string]string{ignoreLabel: "true", celLabel: "true"}},
		minimalWebhookSetup: {"minimal webhook", "apilatency-minimal-", map[string]string{ignoreLabel: "true", minimalLabel: "true"}},
	}
	var setups []*setup
	for _, s := range specs {
		// Generated names let a run start while an earlier run's namespaces
		// are still terminating.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: s.prefix, Labels: s.labels}}
		created, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if err != nil {
			return setups, fmt.Errorf("creating the namespace of set-up %s: %w", s.name, err)
		}
		setups = append(setups, &setup{name: s.name, namespace: created.Name})
	}
	return setups, nil
}

// deleteNamespaces deletes the set-ups' namespaces and, with them, what the
// run left inside.
func deleteNamespaces(ctx context.Context, client kubernetes.Interface, setups []*setup) error {
	var errs []error
	for _, s := range setups {
		if err := client.CoreV1().Namespaces().Delete(ctx, s.namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", s.namespace, err))
		}
	}
	return errors.Join(errs...)
}

// daemonsetGuardsMutation waits until daemonset-guard mutates the measured
// DaemonSet in its set-up and returns what it set.
func daemonsetGuardsMutation(ctx context.Context, client kubernetes.Interface, s *setup) (mutation, error) {
	var got mutation
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := client.AppsV1().DaemonSets(s.namespace).Create(ctx, daemonSet(s.namespace, "probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			last = err
			return false, nil
		}
		got = mutationOf(ds)
		return got.Rules != "", nil
	})
	if err != nil {
		return got, fmt.Errorf("daemonset-guard did not mutate the DaemonSet within a minute (last error: %v): %w", last, err)
	}
	return got, nil
}

// noNode is a node label that no node has. The measured DaemonSets select
// it, so the DaemonSet controller creates no pods for them: each create costs
// the cluster one ControllerRevision rather than a pod per node, and the run
// measures admission, not scheduling. Under e2e/testdata/policy.yaml the
// webhook's targets-nodes rule only warns about such a DaemonSet.
const noNode = "apilatency.daemonset-guard.io/no-node"

// daemonSet is the DaemonSet every set-up creates: a realistic 4 KB log
// collector that runs nowhere.
func daemonSet(namespace, name string) *appsv1.DaemonSet {
	return fixture.Realistic(func(ds *appsv1.DaemonSet) {
		ds.Namespace, ds.Name = namespace, name
		ds.Spec.Template.Spec.NodeSelector = map[string]string{noNode: "true"}
	})
}

// mutation is what daemonset-guard's mutation rules may change.
type mutation struct {
	Rules           string
	Tolerations     []corev1.Toleration
	MaxUnavailable  *intstr.IntOrString
	MinReadySeconds int32
}

func mutationOf(ds *appsv1.DaemonSet) mutation {
	m := mutation{Rules: ds.Annotations[rules.MutatedAnnotation], Tolerations: ds.Spec.Template.Spec.Tolerations, MinReadySeconds: ds.Spec.MinReadySeconds}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		m.MaxUnavailable = ru.MaxUnavailable
	}
	return m
}

// awaitAdmission waits until each set-up admits the measured DaemonSet as it
// should: without admission it stays as written, and the webhooks, the CEL
// policies and the minimal webhook mutate it alike, or the set-ups would not
// be doing the same work. The mutating policy must evaluate without error; a validating policy
// that errs denies or warns, which the checks see. Registrations and policies
// reach the API server's admission plugins through informers, a moment after
// they are written, hence the polling.
func awaitAdmission(ctx context.Context, restConfig *rest.Config, setups []*setup) error {
	relayed := &warnings.Recorder{}
	restConfig = rest.CopyConfig(restConfig)
	restConfig.WarningHandler = relayed
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	// A rollout budget above the policy's 50%, which the warning policy
	// reports. No valid DaemonSet is denied by the deny policy (the API
	// server's own validation refuses such objects first), but the deny
	// policy and its binding are written before the warning policy and its
	// binding, and informers deliver objects in the order they were written:
	// once the warning policy acts, the deny policy is in place too.
	overBudget := daemonSet(setups[celPolicies].namespace, "probe-over-budget")
	overBudget.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("60%"))
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	var notYet error
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		before, err := scrape(ctx, client)
		if err != nil {
			return false, err
		}
		// While the policies settle, the deny policy may refuse what the
		// mutating policy, not yet in place, left unmutated: a refusal is
		// a reason to wait, and the last one is reported on timeout.
		admitted := make([]mutation, len(setups))
		for i, s := range setups {
			ds, err := client.AppsV1().DaemonSets(s.namespace).Create(ctx, daemonSet(s.namespace, "probe"), dryRun)
			if err != nil {
				notYet = fmt.Errorf("dry-run create in set-up %s: %w", s.name, err)
				return false, nil
			}
			admitted[i] = mutationOf(ds)
		}
		relayed.Take()
		if _, err := client.AppsV1().DaemonSets(overBudget.Namespace).Create(ctx, overBudget, dryRun); err != nil {
			notYet = fmt.Errorf("dry-run create in set-up %s: %w", setups[celPolicies].name, err)
			return false, nil
		}
		warned := slices.ContainsFunc(relayed.Take(), func(w string) bool { return strings.Contains(w, "[rollout-budget]") })
		after, err := scrape(ctx, client)
		if err != nil {
			return false, err
		}

		for policy, h := range after.minus(before).mutatingErrs {
			if h.count > 0 {
				return false, fmt.Errorf("mutating policy %s failed to evaluate %d times: see the API server's log", policy, h.count)
			}
		}
		if r := admitted[noAdmission].Rules; r != "" {
			return false, fmt.Errorf("set-up %s mutated the DaemonSet (%s): is its namespace not ignored?", setups[noAdmission].name, r)
		}
		for _, i := range []int{daemonsetGuard, celPolicies, minimalWebhookSetup} {
			if admitted[i].Rules == "" {
				notYet = fmt.Errorf("set-up %s has not mutated the DaemonSet", setups[i].name)
				return false, nil
			}
		}
		for _, i := range []int{celPolicies, minimalWebhookSetup} {
			if want, got := admitted[daemonsetGuard], admitted[i]; !equality.Semantic.DeepEqual(want, got) {
				return false, fmt.Errorf("set-up %s mutates the DaemonSet unlike daemonset-guard:\n  daemonset-guard: %+v\n  %s: %+v", setups[i].name, want, setups[i].name, got)
			}
		}
		if !warned {
			notYet = errors.New("the CEL warning policy has not warned about a rollout budget above 50%")
			return false, nil
		}
		return true, nil
	})
	if wait.Interrupted(err) && notYet != nil && ctx.Err() == nil {
		return fmt.Errorf("the set-ups did not admit as expected within a minute: %w", notYet)
	}
	return err
}
