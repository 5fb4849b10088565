package inventory

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/daemon"

	generated "github.com/daemonset-guard/daemonset-guard/internal/generate/placement"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
)

// everything lets the generators produce every shape, including those the
// API server refuses, which offline checks may still meet.
var everything = generated.Options{Invalid: true, ControllerTaints: true}

// controllerShouldRun is the DaemonSet controller's own answer
// (pkg/controller/daemon, kube-controller-manager v1.37).
func controllerShouldRun(node *corev1.Node, spec *corev1.PodSpec) bool {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: *spec}}}
	shouldRun, _ := daemon.NodeShouldRunDaemonPod(klog.Background(), node, ds)
	return shouldRun
}

// TestPlacementEqualsTheController checks, on random clusters and templates
// (PROPERTY_SEED replays a run), that every answer of the inventory is the
// controller's: each node's verdict, the coverage counts through the class
// index, the nodes an update takes away, and that each exclusion reason is
// true of the node it excludes.
func TestPlacementEqualsTheController(t *testing.T) {
	rng := seed.Rand(t)
	for round := range 400 {
		nodes := generated.Nodes(rng, "node", 1+rng.IntN(40), everything)
		spec := generated.Spec(rng, nodes, everything)
		inv := New(nodes...)
		p := newPlacement(&spec)
		p.parse()
		want := 0
		for _, n := range nodes {
			shouldRun := controllerShouldRun(n, &spec)
			reason := p.exclusion(n)
			if shouldRun != (reason == "") {
				t.Fatalf("round %d: node %s: controller says shouldRun=%v, daemonset-guard says %q\nnode: %+v\nspec: %+v", round, n.Name, shouldRun, reason, n, spec)
			}
			if shouldRun {
				want++
			} else if err := reasonHolds(reason, n, &spec); err != nil {
				t.Fatalf("round %d: node %s: %v\nnode: %+v\nspec: %+v", round, n.Name, err, n, spec)
			}
		}
		cov, err := inv.Coverage(&spec)
		if err != nil {
			t.Fatal(err)
		}
		excluded := 0
		for _, e := range cov.Exclusions {
			excluded += e.Nodes
		}
		if cov.Eligible != want || cov.Nodes != len(nodes) || excluded != len(nodes)-want {
			t.Fatalf("round %d: coverage %+v, want %d of %d eligible\nspec: %+v", round, cov, want, len(nodes), spec)
		}

		// Mixed by hostname counts, per label value, the nodes that run the
		// pod (generated hostnames may repeat, and may be absent).
		spread, err := inv.Mixed(&spec, corev1.LabelHostname)
		if err != nil {
			t.Fatal(err)
		}
		wantSpread := map[string]int{}
		for _, n := range nodes {
			if host, labelled := n.Labels[corev1.LabelHostname]; labelled && controllerShouldRun(n, &spec) {
				wantSpread[host]++
			}
		}
		if len(wantSpread) < 2 {
			wantSpread = nil // one value or none is no mix
		}
		if !maps.Equal(spread, wantSpread) || (spread == nil) != (wantSpread == nil) {
			t.Fatalf("round %d: Mixed = %v, the controller's answers give %v\nspec: %+v", round, spread, wantSpread, spec)
		}

		newSpec := generated.Spec(rng, nodes, everything)
		var wantLost, wantGained []string
		for _, n := range nodes {
			was, will := controllerShouldRun(n, &spec), controllerShouldRun(n, &newSpec)
			switch {
			case was && !will:
				wantLost = append(wantLost, n.Name)
			case will && !was:
				wantGained = append(wantGained, n.Name)
			}
		}
		slices.Sort(wantLost)
		slices.Sort(wantGained)
		lost, gained, err := inv.Moved(&spec, &newSpec)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lost, wantLost) || !slices.Equal(gained, wantGained) {
			t.Fatalf("round %d: Moved = %v lost, %v gained; the controller's answers take away %v and add %v\nold: %+v\nnew: %+v",
				round, lost, gained, wantLost, wantGained, spec, newSpec)
		}
	}
}

// reasonHolds checks an exclusion reason against the node and the template
// with the plainest code there is, so that a reason that names the wrong
// label, taint or requirement fails.
func reasonHolds(reason string, node *corev1.Node, spec *corev1.PodSpec) error {
	selectorHolds := func() error {
		for k, v := range spec.NodeSelector {
			if have, ok := node.Labels[k]; !ok || have != v {
				return fmt.Errorf("reason %q blames the affinity, but the node fails nodeSelector %s=%q first", reason, k, v)
			}
		}
		return nil
	}
	switch {
	case strings.HasPrefix(reason, "are not node "):
		if spec.NodeName == "" || spec.NodeName == node.Name || !strings.Contains(reason, spec.NodeName) {
			return fmt.Errorf("reason %q, but spec.nodeName is %q", reason, spec.NodeName)
		}
	case strings.HasPrefix(reason, "lack label "):
		for k, v := range spec.NodeSelector {
			if reason == fmt.Sprintf("lack label %s=%s", k, quoteEmpty(v)) {
				if have, ok := node.Labels[k]; ok && have == v {
					return fmt.Errorf("reason %q, but the node has %s=%q", reason, k, have)
				}
				return nil
			}
		}
		return fmt.Errorf("reason %q names no entry of nodeSelector %v", reason, spec.NodeSelector)
	case strings.HasPrefix(reason, "have untolerated taint "):
		tolerations := daemonpod.Tolerations(spec)
		for _, taint := range node.Spec.Taints {
			if "have untolerated taint "+taint.ToString() != reason {
				continue
			}
			if taint.Effect == corev1.TaintEffectPreferNoSchedule {
				return fmt.Errorf("reason %q names a PreferNoSchedule taint", reason)
			}
			for _, tol := range tolerations {
				if tol.ToleratesTaint(klog.Background(), &taint, false) {
					return fmt.Errorf("reason %q, but %+v tolerates it", reason, tol)
				}
			}
			return nil
		}
		return fmt.Errorf("reason %q names no taint of the node", reason)
	case strings.HasPrefix(reason, "do not match required node affinity "):
		if err := selectorHolds(); err != nil {
			return err
		}
		terms := requiredAffinity(spec).NodeSelectorTerms
		if len(terms) != 1 {
			return fmt.Errorf("reason %q names one requirement of %d terms", reason, len(terms))
		}
		for _, req := range append(slices.Clone(terms[0].MatchExpressions), terms[0].MatchFields...) {
			if strings.Contains(reason, " "+describe(req)) {
				return nil
			}
		}
		return fmt.Errorf("reason %q names no requirement of %+v", reason, terms[0])
	case strings.HasPrefix(reason, "match none of the "):
		if err := selectorHolds(); err != nil {
			return err
		}
		if n := len(requiredAffinity(spec).NodeSelectorTerms); reason != fmt.Sprintf("match none of the %d required node affinity terms", n) {
			return fmt.Errorf("reason %q, but there are %d terms", reason, n)
		}
	case strings.HasPrefix(reason, "match no node: the only required node affinity term is empty"):
		if err := selectorHolds(); err != nil {
			return err
		}
		if terms := requiredAffinity(spec).NodeSelectorTerms; len(terms) != 1 || len(terms[0].MatchExpressions)+len(terms[0].MatchFields) != 0 {
			return fmt.Errorf("reason %q, but the terms are %+v", reason, terms)
		}
	default:
		return fmt.Errorf("reason %q is not one that this test knows how to check", reason)
	}
	return nil
}

// FuzzPlacement holds the placement to the controller on clusters and
// templates drawn from the fuzzer's bytes: a node excluded has a true reason,
// a node included none, and the class index counts what the nodes say.
func FuzzPlacement(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(7), uint64(40))
	f.Fuzz(func(t *testing.T, seed, size uint64) {
		rng := rand.New(rand.NewPCG(seed, size))
		nodes := generated.Nodes(rng, "n", 1+int(size%30), everything)
		spec := generated.Spec(rng, nodes, everything)
		p := newPlacement(&spec)
		p.parse()
		eligible := 0
		for _, n := range nodes {
			reason := p.exclusion(n)
			if controllerShouldRun(n, &spec) != (reason == "") {
				t.Fatalf("node %s: reason %q disagrees with the controller\nnode: %+v\nspec: %+v", n.Name, reason, n, spec)
			}
			if reason == "" {
				eligible++
			} else if err := reasonHolds(reason, n, &spec); err != nil {
				t.Fatal(err)
			}
		}
		cov, err := New(nodes...).Coverage(&spec)
		if err != nil || cov.Eligible != eligible {
			t.Fatalf("coverage %+v (%v), want %d eligible", cov, err, eligible)
		}
	})
}
