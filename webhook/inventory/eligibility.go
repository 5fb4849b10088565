package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
)

// MaxWork bounds the work of one placement question, in units of about 20 ns
// on a 2-core machine of 2026 (BenchmarkPlacementBudget): the node groups
// evaluated, each costing groupWork plus one unit per selector entry,
// requirement, term and toleration, and parseWork per requirement and value
// parsed. It keeps a question under about 50 ms whatever the template; a
// question over it is not started, and ErrTooExpensive says why.
const MaxWork = 1_500_000

// The fixed costs, in MaxWork's units: evaluating a group (the node's label
// and field sets) and parsing a requirement or a value (validating it).
const (
	groupWork = 50
	parseWork = 50
)

// maxGroupingKeys bounds the label keys a grouping is built on; a template
// that refers to more is evaluated node by node.
const maxGroupingKeys = 16

// ErrTooExpensive is returned, wrapped with the figures, for a placement
// question whose work would exceed MaxWork.
var ErrTooExpensive = errors.New("placement is too expensive to check")

// Coverage says on how many nodes a pod template would run and why the
// others are excluded.
type Coverage struct {
	// Nodes is the number of nodes in the inventory.
	Nodes int `json:"nodes"`
	// Eligible is the number of nodes that would run the pod.
	Eligible int `json:"eligible"`
	// Exclusions group the other nodes by reason, largest group first.
	Exclusions []Exclusion `json:"exclusions,omitempty"`
}

// Exclusion is a reason that keeps nodes from running the pod.
type Exclusion struct {
	// Reason completes the sentence "N nodes ...", e.g. "lack label disktype=ssd".
	Reason string `json:"reason"`
	Nodes  int    `json:"nodes"`
}

// String summarises the coverage, naming at most the three largest exclusions:
// "0 of 12 nodes: 9 lack label disktype=ssd, 3 have untolerated taint dedicated=gpu:NoSchedule".
func (c Coverage) String() string {
	s := fmt.Sprintf("%d of %d nodes", c.Eligible, c.Nodes)
	if len(c.Exclusions) == 0 {
		return s
	}
	const shown = 3
	parts := make([]string, 0, shown+1)
	rest := 0
	for i, e := range c.Exclusions {
		if i < shown {
			parts = append(parts, fmt.Sprintf("%d %s", e.Nodes, e.Reason))
		} else {
			rest += e.Nodes
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("%d for other reasons", rest))
	}
	return s + ": " + strings.Join(parts, ", ")
}

// Coverage evaluates the template's pod against every node, as the DaemonSet
// controller would. It returns an error wrapping ErrTooExpensive, before
// doing the work, when the question would exceed MaxWork.
func (inv *Inventory) Coverage(spec *corev1.PodSpec) (Coverage, error) {
	p := newPlacement(spec)
	var cov Coverage
	excluded := map[string]int{}
	nodes, err := inv.eachGroup([]*placement{p}, func(node *corev1.Node, size int, _ func() []string) {
		if reason := p.exclusion(node); reason != "" {
			excluded[reason] += size
		} else {
			cov.Eligible += size
		}
	})
	if err != nil {
		return Coverage{}, err
	}
	cov.Nodes = nodes
	for reason, count := range excluded {
		cov.Exclusions = append(cov.Exclusions, Exclusion{Reason: reason, Nodes: count})
	}
	slices.SortFunc(cov.Exclusions, func(a, b Exclusion) int {
		return cmp.Or(cmp.Compare(b.Nodes, a.Nodes), cmp.Compare(a.Reason, b.Reason))
	})
	return cov, nil
}

// Moved returns, sorted, the nodes that run a pod of the old template but
// would not run one of the new template, and those that would run one of
// the new template only. Like Coverage, it is one question, refused over
// MaxWork.
func (inv *Inventory) Moved(oldSpec, newSpec *corev1.PodSpec) (lost, gained []string, err error) {
	if SamePlacement(oldSpec, newSpec) {
		return nil, nil, nil
	}
	oldPod, newPod := newPlacement(oldSpec), newPlacement(newSpec)
	_, err = inv.eachGroup([]*placement{oldPod, newPod}, func(node *corev1.Node, _ int, members func() []string) {
		switch was, will := oldPod.fits(node), newPod.fits(node); {
		case was && !will:
			lost = append(lost, members()...)
		case will && !was:
			gained = append(gained, members()...)
		}
	})
	slices.Sort(lost)
	slices.Sort(gained)
	return lost, gained, err
}

// NotReady returns how many nodes the template would run on but for the
// taints the node lifecycle controller sets on a node that is not ready or
// unreachable: the nodes whose daemon pods are unavailable and which a
// rollout cannot replace. Like Coverage, it is one question.
func (inv *Inventory) NotReady(spec *corev1.PodSpec) (int, error) {
	ready := newPlacement(spec)
	tolerant := *spec
	tolerant.Tolerations = append(slices.Clone(spec.Tolerations),
		corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists},
		corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists})
	anyway := newPlacement(&tolerant)
	count := 0
	_, err := inv.eachGroup([]*placement{ready, anyway}, func(node *corev1.Node, size int, _ func() []string) {
		if anyway.fits(node) && !ready.fits(node) {
			count += size
		}
	})
	return count, err
}

// Mixed returns, when the nodes the template would run on carry more than
// one value of the label key, how many carry each; nil otherwise. Nodes
// without the label are not counted. Whether the cluster holds two values
// at all is answered first from a grouping by the key alone, which every
// template shares, so that on a cluster of one value (most clusters, for
// kubernetes.io/os) the question builds no grouping per template.
func (inv *Inventory) Mixed(spec *corev1.PodSpec, key string) (map[string]int, error) {
	// A placement that names the key makes the groups tell its values apart.
	byKey := newPlacement(&corev1.PodSpec{NodeSelector: map[string]string{key: ""}})
	var first string
	seen, several := false, false
	_, err := inv.eachGroup([]*placement{byKey}, func(node *corev1.Node, _ int, _ func() []string) {
		switch v, ok := node.Labels[key]; {
		case !ok || several:
		case !seen:
			first, seen = v, true
		case v != first:
			several = true
		}
	})
	if err != nil || !several {
		return nil, err
	}
	p := newPlacement(spec)
	counts := map[string]int{}
	_, err = inv.eachGroup([]*placement{p, byKey}, func(node *corev1.Node, size int, _ func() []string) {
		if v, ok := node.Labels[key]; ok && p.fits(node) {
			counts[v] += size
		}
	})
	if err != nil || len(counts) < 2 {
		return nil, err
	}
	return counts, nil
}

// eachGroup calls visit once for each group of nodes that the placements
// cannot tell apart, with a node that stands for the group, its size and a
// function listing its members' names, after checking the work against
// MaxWork. It returns the number of nodes.
//
// Nodes are alike to a template when they agree on the label keys it refers
// to and on their taints, and, if it names nodes (spec.nodeName,
// matchFields), when neither is one of the names it mentions: the nodes it
// names are evaluated one by one, the others by the class of the grouping on
// its keys, through a member that it does not name.
func (inv *Inventory) eachGroup(ps []*placement, visit func(node *corev1.Node, size int, members func() []string)) (nodes int, err error) {
	var keys, names []string
	perGroup, parsing := 0, 0
	for _, p := range ps {
		keys = append(keys, p.keys...)
		names = append(names, p.names...)
		perGroup += p.work
		parsing += p.parsing
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	prepare := func(groups int) error {
		if work := groups*(groupWork+perGroup) + parsing*parseWork; work > MaxWork || work < 0 {
			return fmt.Errorf("%w: %d groups of alike nodes times %d checks each, and %d requirements and values to parse, is more work than a request may take; "+
				"simplify the template's nodeSelector, required node affinity or tolerations", ErrTooExpensive, groups, perGroup, parsing)
		}
		for _, p := range ps {
			p.parse()
		}
		return nil
	}

	if len(keys) > maxGroupingKeys {
		inv.mu.RLock()
		defer inv.mu.RUnlock()
		if err := prepare(len(inv.nodes)); err != nil {
			return 0, err
		}
		// visit keeps no node: one serves for all.
		var scratch corev1.Node
		for name, n := range inv.nodes {
			visit(n.asCore(&scratch), 1, func() []string { return []string{name} })
		}
		return len(inv.nodes), nil
	}
	err = inv.withGrouping(keys, func(g *grouping) error {
		nodes = len(inv.nodes)
		// The named nodes that exist, and how many of each class's members
		// they are; nil maps for the templates that name none.
		var named map[string]bool
		var namedIn map[*class]int
		for _, name := range names {
			if n := inv.nodes[name]; n != nil && !named[name] {
				if named == nil {
					named, namedIn = map[string]bool{}, map[*class]int{}
				}
				named[name] = true
				namedIn[g.classes[g.classKey(n)]]++
			}
		}
		if err := prepare(len(g.classes) + len(named)); err != nil {
			return err
		}
		if len(named) > 0 {
			// Inside the if: escaping to visit, it is allocated where it is
			// declared, and most questions name no node.
			var scratch corev1.Node
			for name := range named {
				visit(inv.nodes[name].asCore(&scratch), 1, func() []string { return []string{name} })
			}
		}
		for _, c := range g.classes {
			size := len(c.members) - namedIn[c]
			if size == 0 {
				continue
			}
			node := c.representative
			if len(names) > 0 {
				// A template that names nodes reads the name: stand for the
				// class with one it does not name.
				for name := range c.members {
					if !named[name] {
						withName := *node
						withName.Name = name
						node = &withName
						break
					}
				}
			}
			visit(node, size, func() []string {
				var out []string
				for name := range c.members {
					if !named[name] {
						out = append(out, name)
					}
				}
				return out
			})
		}
		return nil
	})
	return nodes, err
}

// SamePlacement reports whether two pod specs have equal placement inputs,
// so that they run on the same nodes whatever the nodes are.
func SamePlacement(a, b *corev1.PodSpec) bool {
	return a.NodeName == b.NodeName && a.HostNetwork == b.HostNetwork &&
		equality.Semantic.DeepEqual(a.NodeSelector, b.NodeSelector) &&
		equality.Semantic.DeepEqual(requiredAffinity(a), requiredAffinity(b)) &&
		equality.Semantic.DeepEqual(a.Tolerations, b.Tolerations)
}

func requiredAffinity(spec *corev1.PodSpec) *corev1.NodeSelector {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		return nil
	}
	return spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

// placement is what the DaemonSet controller reads of a pod template to
// decide where its pods run. The parts that cost time to build (the parsed
// affinity, the exclusion reasons) are built by parse, once the question is
// known to be affordable, and the controller's tolerations when a tainted
// node first needs them.
type placement struct {
	spec     *corev1.PodSpec
	parsed   bool
	affinity nodeaffinity.RequiredNodeAffinity
	// tolerations are the controller's, made when a tainted node is met.
	tolerations []corev1.Toleration
	// selector holds the nodeSelector's entries with the reason each gives,
	// and requirements those of a single required term: the parts that
	// exclusion reasons name, prepared once.
	selector     []selectorEntry
	requirements []requirement
	// keys are the label keys the nodeSelector and required node affinity
	// refer to, sorted: nodes alike on them and on taints are alike here.
	keys []string
	// names are the node names spec.nodeName and matchFields mention: to
	// the template, every other node has the same name.
	names []string
	// work is what evaluating one node costs beyond groupWork; parsing
	// counts the requirements and values that parse parses.
	work, parsing int
}

func newPlacement(spec *corev1.PodSpec) *placement {
	p := &placement{spec: spec}
	if spec.NodeName != "" {
		p.names = append(p.names, spec.NodeName)
	}
	for k := range spec.NodeSelector {
		p.keys = append(p.keys, k)
	}
	p.work = 1 + len(spec.NodeSelector) + len(spec.Tolerations)
	if ns := requiredAffinity(spec); ns != nil {
		for _, term := range ns.NodeSelectorTerms {
			for _, req := range term.MatchExpressions {
				p.keys = append(p.keys, req.Key)
				p.parsing += 1 + len(req.Values)
			}
			for _, req := range term.MatchFields {
				p.names = append(p.names, req.Values...)
				p.parsing += 1 + len(req.Values)
			}
			p.work += 1 + len(term.MatchExpressions) + len(term.MatchFields)
		}
	}
	slices.Sort(p.keys)
	p.keys = slices.Compact(p.keys)
	return p
}

type selectorEntry struct{ key, value, reason string }

// requirement is one requirement of the only required term, alone.
type requirement struct {
	matcher *nodeaffinity.LazyErrorNodeSelector
	reason  string
}

func (p *placement) parse() {
	if p.parsed {
		return
	}
	p.parsed = true
	// As daemon.NodeShouldRunDaemonPod builds it, from the template alone.
	p.affinity = nodeaffinity.NewRequiredNodeAffinity(p.spec.NodeSelector, p.spec.Affinity)
	for _, k := range slices.Sorted(maps.Keys(p.spec.NodeSelector)) {
		v := p.spec.NodeSelector[k]
		p.selector = append(p.selector, selectorEntry{key: k, value: v, reason: fmt.Sprintf("lack label %s=%s", k, quoteEmpty(v))})
	}
	if ns := requiredAffinity(p.spec); ns != nil && len(ns.NodeSelectorTerms) == 1 {
		term := ns.NodeSelectorTerms[0]
		alone := func(t corev1.NodeSelectorTerm, reason string) requirement {
			m := nodeaffinity.NewLazyErrorNodeSelector(&corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{t}})
			// Match returns the parse error, if any, whenever no term
			// matches; a requirement that does not parse matches nothing.
			if _, err := m.Match(&corev1.Node{}); err != nil {
				reason += fmt.Sprintf(" (invalid, so it matches no node: %v)", err)
			}
			return requirement{matcher: m, reason: reason}
		}
		for _, req := range term.MatchExpressions {
			p.requirements = append(p.requirements, alone(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{req}}, "do not match required node affinity "+describe(req)))
		}
		for _, req := range term.MatchFields {
			p.requirements = append(p.requirements, alone(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{req}}, "do not match required node affinity field "+describe(req)))
		}
	}
}

// fits is the "should run" answer of the controller's nodeShouldRunDaemonPod
// (pkg/controller/daemon): the same checks, through the same helpers, in the
// same order. TestPlacementEqualsTheController holds it to the controller's
// own function.
func (p *placement) fits(node *corev1.Node) bool { return p.exclusion(node) == "" }

// exclusion returns why the node would not run the pod, or "" if it would.
func (p *placement) exclusion(node *corev1.Node) string {
	if p.spec.NodeName != "" && p.spec.NodeName != node.Name {
		return fmt.Sprintf("are not node %s, which spec.nodeName names", p.spec.NodeName)
	}
	// The controller ignores parse errors of the affinity, and so do we:
	// a term that cannot be parsed matches no node.
	if ok, _ := p.affinity.Match(node); !ok {
		return p.affinityExclusion(node)
	}
	// Comparison operators on tolerations are an alpha feature, off by
	// default, as in the controller.
	if len(node.Spec.Taints) == 0 {
		return ""
	}
	if p.tolerations == nil {
		// Built for the first tainted node only: a question that only
		// groups nodes, or meets no taint, never pays for it.
		p.tolerations = daemonpod.Tolerations(p.spec)
	}
	if taint, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, p.tolerations, noScheduleOrExecute, false); untolerated {
		return "have untolerated taint " + taint.ToString()
	}
	return ""
}

// noScheduleOrExecute selects the taints that keep a daemon pod off a node.
// PreferNoSchedule is only a preference, which the controller ignores.
func noScheduleOrExecute(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// affinityExclusion names the first part of the nodeSelector or required
// node affinity that the node fails. It is called only for a node that fails
// them, and always returns a reason.
func (p *placement) affinityExclusion(node *corev1.Node) string {
	for _, e := range p.selector {
		// A label with an empty value is not an absent label.
		if have, ok := node.Labels[e.key]; !ok || have != e.value {
			return e.reason
		}
	}
	ns := requiredAffinity(p.spec)
	if ns == nil {
		return "do not match the nodeSelector"
	}
	switch terms := ns.NodeSelectorTerms; len(terms) {
	case 0:
		return "match no required node affinity term, as none is listed"
	case 1:
		if len(p.requirements) == 0 {
			return "match no node: the only required node affinity term is empty, and an empty term matches no node"
		}
		for _, r := range p.requirements {
			if ok, _ := r.matcher.Match(node); !ok {
				return r.reason
			}
		}
		return "do not match the required node affinity"
	default:
		return fmt.Sprintf("match none of the %d required node affinity terms", len(terms))
	}
}

func describe(req corev1.NodeSelectorRequirement) string {
	if len(req.Values) == 0 {
		return fmt.Sprintf("%s %s", req.Key, req.Operator)
	}
	values := make([]string, len(req.Values))
	for i, v := range req.Values {
		values[i] = quoteEmpty(v)
	}
	return fmt.Sprintf("%s %s [%s]", req.Key, req.Operator, strings.Join(values, ", "))
}

// quoteEmpty shows an empty label value as "", so that it reads as a value.
func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}
