// Package placement makes random nodes and pod placements (nodeName,
// nodeSelector, required node affinity, tolerations) for the tests that hold
// daemonset-guard's predictions to the DaemonSet controller's.
package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Options say which shapes the placement generators may produce.
type Options struct {
	// Invalid allows what the API server refuses (unknown operators,
	// non-numeric Gt values, several values in matchFields), which only
	// offline checks and bugs can bring.
	Invalid bool
	// ControllerTaints allows the taints that the node lifecycle controller
	// owns (not-ready, unreachable, the pressure conditions): a real cluster
	// removes them from a node whose conditions do not call for them.
	ControllerTaints bool
}

// The vocabulary nodes and templates draw from: few enough keys and values
// that templates often match some nodes and not others.
var (
	labelKeys   = []string{"pool", "zone", "tier", "role.example.com/edge", "node-role.kubernetes.io/control-plane"}
	labelValues = map[string][]string{
		"pool": {"a", "b"}, "zone": {"z1", "z2", "z3"}, "tier": {"1", "5", "10"},
		// Roles are labels whose value is empty: present and absent must
		// never be confused.
		"role.example.com/edge": {"", "true"}, "node-role.kubernetes.io/control-plane": {""},
	}
	plainTaints = []corev1.Taint{
		{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute},
		{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule},
		{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
		{Key: "maintenance", Effect: corev1.TaintEffectNoExecute},
	}
	controllerTaints = []corev1.Taint{
		{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule},
	}
	placementTolerations = []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
		{Key: "maintenance", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](0)},
		{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule},
		{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		// A bounded toleration of a taint the controller tolerates for ever:
		// the controller replaces it with its own.
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
	}
	tolerateEverything = corev1.Toleration{Operator: corev1.TolerationOpExists}
)

// Nodes returns n nodes named prefix-0, prefix-1, ... with labels and taints
// drawn from a small vocabulary. Most carry kubernetes.io/hostname equal to
// their name, as kubelets set it; some carry another hostname (cloud
// providers that name nodes after instance ids do) or none.
func Nodes(rng *rand.Rand, prefix string, n int, opts Options) []*corev1.Node {
	taints := plainTaints
	if opts.ControllerTaints {
		taints = slices.Concat(plainTaints, controllerTaints)
	}
	nodes := make([]*corev1.Node, n)
	for i := range nodes {
		name := fmt.Sprintf("%s-%d", prefix, i)
		labels := map[string]string{}
		switch rng.IntN(6) {
		case 0:
			labels[corev1.LabelHostname] = fmt.Sprintf("host-%d", rng.IntN(n))
		case 1:
		default:
			labels[corev1.LabelHostname] = name
		}
		for _, k := range labelKeys {
			if rng.IntN(2) == 0 {
				labels[k] = oneOf(rng, labelValues[k])
			}
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		for _, t := range taints {
			if rng.IntN(6) == 0 {
				node.Spec.Taints = append(node.Spec.Taints, t)
			}
		}
		nodes[i] = node
	}
	return nodes
}

// Spec returns a pod spec whose placement fields (nodeName,
// nodeSelector, required node affinity, tolerations, hostNetwork) are drawn
// so that they refer to the given nodes' names, hostnames and labels.
func Spec(rng *rand.Rand, nodes []*corev1.Node, opts Options) corev1.PodSpec {
	spec := corev1.PodSpec{HostNetwork: rng.IntN(2) == 0}
	if rng.IntN(20) == 0 {
		spec.NodeName = nodeName(rng, nodes)
	}
	if rng.IntN(2) == 0 {
		spec.NodeSelector = map[string]string{}
		for range 1 + rng.IntN(2) {
			k, v := selectorLabel(rng, nodes)
			spec.NodeSelector[k] = v
		}
	}
	if rng.IntN(2) == 0 {
		var terms []corev1.NodeSelectorTerm
		for range 1 + rng.IntN(3) {
			terms = append(terms, term(rng, nodes, opts))
		}
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		// Preferred terms never decide placement.
		spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.PreferredSchedulingTerm{{Weight: 10, Preference: term(rng, nodes, Options{})}}
	}
	spec.Tolerations = Pick(rng, placementTolerations)
	if rng.IntN(15) == 0 {
		spec.Tolerations = append(spec.Tolerations, tolerateEverything)
	}
	if opts.Invalid && rng.IntN(10) == 0 {
		spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: "tier", Operator: "Lt", Value: "5", Effect: corev1.TaintEffectNoSchedule})
	}
	return spec
}

func term(rng *rand.Rand, nodes []*corev1.Node, opts Options) corev1.NodeSelectorTerm {
	var t corev1.NodeSelectorTerm
	if rng.IntN(12) == 0 {
		return t // an empty term matches no node
	}
	for range 1 + rng.IntN(3) {
		t.MatchExpressions = append(t.MatchExpressions, expression(rng, nodes, opts))
	}
	if rng.IntN(5) == 0 {
		op := []corev1.NodeSelectorOperator{corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn}[rng.IntN(2)]
		req := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: op, Values: []string{nodeName(rng, nodes)}}
		if opts.Invalid && rng.IntN(4) == 0 {
			req.Values = append(req.Values, nodeName(rng, nodes))
		}
		t.MatchFields = append(t.MatchFields, req)
	}
	return t
}

func expression(rng *rand.Rand, nodes []*corev1.Node, opts Options) corev1.NodeSelectorRequirement {
	ops := []corev1.NodeSelectorOperator{corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt}
	if opts.Invalid {
		ops = append(ops, "Near")
	}
	req := corev1.NodeSelectorRequirement{Operator: oneOf(rng, ops)}
	switch req.Operator {
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		req.Key = "tier"
		req.Values = []string{oneOf(rng, []string{"1", "4", "8"})}
		if opts.Invalid && rng.IntN(4) == 0 {
			req.Values = []string{"high"}
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		req.Key = oneOf(rng, slices.Concat(labelKeys, []string{corev1.LabelHostname}))
	default:
		k, v := selectorLabel(rng, nodes)
		req.Key, req.Values = k, []string{v}
		if rng.IntN(3) == 0 {
			var other string
			if k == corev1.LabelHostname {
				other = nodes[rng.IntN(len(nodes))].Labels[corev1.LabelHostname]
			} else {
				other = oneOf(rng, labelValues[k])
			}
			if other != v {
				req.Values = append(req.Values, other)
			}
		}
	}
	return req
}

// selectorLabel returns a label a template might select: from the
// vocabulary, or the hostname of one of the nodes.
func selectorLabel(rng *rand.Rand, nodes []*corev1.Node) (string, string) {
	if rng.IntN(8) == 0 {
		if h, ok := nodes[rng.IntN(len(nodes))].Labels[corev1.LabelHostname]; ok {
			return corev1.LabelHostname, h
		}
	}
	k := oneOf(rng, labelKeys)
	return k, oneOf(rng, labelValues[k])
}

// nodeName returns one of the nodes' names, or now and then one that no node has.
func nodeName(rng *rand.Rand, nodes []*corev1.Node) string {
	if rng.IntN(6) == 0 {
		return "no-such-node"
	}
	return nodes[rng.IntN(len(nodes))].Name
}

func oneOf[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

// Pick returns each of from with probability one third, in order.
func Pick[T any](rng *rand.Rand, from []T) []T {
	var out []T
	for _, v := range from {
		if rng.IntN(3) == 0 {
			out = append(out, v)
		}
	}
	return out
}
