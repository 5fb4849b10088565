package inventory

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/daemonset-guard/daemonset-guard/webhook/daemonpod"
)

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
// controller would.
func (inv *Inventory) Coverage(spec *corev1.PodSpec) Coverage {
	pod := newDaemonPod(spec)
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	cov := Coverage{Nodes: len(inv.nodes)}
	excluded := map[string]int{}
	for _, c := range inv.classes {
		if !pod.perNode {
			if reason := pod.exclusion(c.representative); reason != "" {
				excluded[reason] += len(c.members)
			} else {
				cov.Eligible += len(c.members)
			}
			continue
		}
		for _, n := range c.members {
			if reason := pod.exclusion(n); reason != "" {
				excluded[reason]++
			} else {
				cov.Eligible++
			}
		}
	}
	for reason, count := range excluded {
		cov.Exclusions = append(cov.Exclusions, Exclusion{Reason: reason, Nodes: count})
	}
	slices.SortFunc(cov.Exclusions, func(a, b Exclusion) int {
		return cmp.Or(cmp.Compare(b.Nodes, a.Nodes), cmp.Compare(a.Reason, b.Reason))
	})
	return cov
}

// Lost returns, sorted, the nodes that run a pod of the old template but
// would not run one of the new template.
func (inv *Inventory) Lost(oldSpec, newSpec *corev1.PodSpec) []string {
	if SamePlacement(oldSpec, newSpec) {
		return nil
	}
	oldPod, newPod := newDaemonPod(oldSpec), newDaemonPod(newSpec)
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	var lost []string
	for _, c := range inv.classes {
		if !oldPod.perNode && !newPod.perNode {
			if oldPod.fits(c.representative) && !newPod.fits(c.representative) {
				for name := range c.members {
					lost = append(lost, name)
				}
			}
			continue
		}
		for name, n := range c.members {
			if oldPod.fits(n) && !newPod.fits(n) {
				lost = append(lost, name)
			}
		}
	}
	slices.Sort(lost)
	return lost
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

// daemonPod is a pod template prepared for placement questions.
type daemonPod struct {
	spec        *corev1.PodSpec
	affinity    nodeaffinity.RequiredNodeAffinity
	tolerations []corev1.Toleration
	// perNode is set when the answer depends on a node's name or identity
	// labels, so a class representative cannot stand for its members.
	perNode bool
}

func newDaemonPod(spec *corev1.PodSpec) daemonPod {
	return daemonPod{
		spec:        spec,
		affinity:    nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity),
		tolerations: daemonpod.Tolerations(spec),
		perNode:     refersToIdentity(spec),
	}
}

func refersToIdentity(spec *corev1.PodSpec) bool {
	if spec.NodeName != "" {
		return true
	}
	for k := range spec.NodeSelector {
		if slices.Contains(identityLabels, k) {
			return true
		}
	}
	if ns := requiredAffinity(spec); ns != nil {
		for _, term := range ns.NodeSelectorTerms {
			if len(term.MatchFields) > 0 {
				return true
			}
			for _, req := range term.MatchExpressions {
				if slices.Contains(identityLabels, req.Key) {
					return true
				}
			}
		}
	}
	return false
}

// noScheduleOrExecute selects the taints that keep a daemon pod off a node.
// PreferNoSchedule is only a preference, which the controller ignores.
func noScheduleOrExecute(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// fits is nodeShouldRunDaemonPod of pkg/controller/daemon, for the question
// "should the node run the pod". Comparison operators on tolerations are an
// alpha feature that is off by default, as in the controller.
func (p daemonPod) fits(node *corev1.Node) bool {
	if p.spec.NodeName != "" && p.spec.NodeName != node.Name {
		return false
	}
	// The controller ignores parse errors of the affinity too.
	if ok, _ := p.affinity.Match(node); !ok {
		return false
	}
	_, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, p.tolerations, noScheduleOrExecute, false)
	return !untolerated
}

// exclusion returns why the node would not run the pod, or "" if it would.
func (p daemonPod) exclusion(node *corev1.Node) string {
	if p.fits(node) {
		return ""
	}
	if p.spec.NodeName != "" && p.spec.NodeName != node.Name {
		return fmt.Sprintf("are not node %s named by spec.nodeName", p.spec.NodeName)
	}
	if ok, _ := p.affinity.Match(node); !ok {
		return p.affinityExclusion(node)
	}
	taint, _ := v1helper.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, p.tolerations, noScheduleOrExecute, false)
	return "have untolerated taint " + taint.ToString()
}

func (p daemonPod) affinityExclusion(node *corev1.Node) string {
	keys := make([]string, 0, len(p.spec.NodeSelector))
	for k := range p.spec.NodeSelector {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := p.spec.NodeSelector[k]; node.Labels[k] != v {
			return fmt.Sprintf("lack label %s=%s", k, v)
		}
	}
	terms := requiredAffinity(p.spec).NodeSelectorTerms
	if len(terms) != 1 {
		return fmt.Sprintf("match none of the %d required node affinity terms", len(terms))
	}
	for _, req := range terms[0].MatchExpressions {
		if !matchesOne(node, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{req}}) {
			return "do not match required node affinity " + describe(req)
		}
	}
	for _, req := range terms[0].MatchFields {
		if !matchesOne(node, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{req}}) {
			return "do not match required node affinity field " + describe(req)
		}
	}
	return "do not match the required node affinity"
}

func matchesOne(node *corev1.Node, term corev1.NodeSelectorTerm) bool {
	ok, _ := nodeaffinity.NewLazyErrorNodeSelector(&corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}).Match(node)
	return ok
}

func describe(req corev1.NodeSelectorRequirement) string {
	if len(req.Values) == 0 {
		return fmt.Sprintf("%s %s", req.Key, req.Operator)
	}
	return fmt.Sprintf("%s %s [%s]", req.Key, req.Operator, strings.Join(req.Values, ", "))
}
