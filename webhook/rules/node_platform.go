package rules

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// NodePlatform is the name of the rule that finds DaemonSets that would run
// on nodes of more than one operating system or architecture.
const NodePlatform = "node-platform"

// NodePlatformOptions configures node-platform.
type NodePlatformOptions struct {
	// SingleArch says the cluster's images are built for one architecture,
	// so that a DaemonSet spanning several kubernetes.io/arch values is
	// reported too.
	SingleArch bool `json:"singleArch,omitempty"`
}

// Validate implements policy.Options: every value is valid.
func (*NodePlatformOptions) Validate(*field.Path) field.ErrorList { return nil }

// NodePlatform declares the rule.
func (builtin) NodePlatform() Rule {
	return Rule{
		Spec: policy.Spec{Name: NodePlatform, Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options { return &NodePlatformOptions{} }},
		Summary: "the DaemonSet runs on nodes of one operating system (and, with singleArch, one architecture)",
		Description: "An agent built for Linux that has no kubernetes.io/os selector lands on the Windows nodes of a mixed cluster and crash-loops there, " +
			"as the fluent-bit and kube-router manifests do on a cluster with one untainted Windows node. On create, and on an update that changes placement, " +
			"the rule counts the nodes the DaemonSet would run on by kubernetes.io/os (and by kubernetes.io/arch when singleArch says images are single-architecture) " +
			"and names the nodeSelector that fixes it. Nodes without the label are not counted.",
		Check: nodePlatform,
	}
}

// nodePlatform finds templates whose eligible nodes span several operating
// systems, or architectures when the policy says images have one.
func nodePlatform(in *Input) ([]Finding, error) {
	if in.Nodes == nil || !in.Nodes.Synced() || in.Operation == Update && inventory.SamePlacement(&in.OldObject.Spec.Template.Spec, &in.Object.Spec.Template.Spec) {
		return nil, nil
	}
	keys := []string{corev1.LabelOSStable}
	if policy.OptionsOf[*NodePlatformOptions](in.Policy, NodePlatform).SingleArch {
		keys = append(keys, corev1.LabelArchStable)
	}
	var out []Finding
	for _, key := range keys {
		counts, err := in.Nodes.Mixed(&in.Object.Spec.Template.Spec, key)
		if err != nil {
			return nil, err
		}
		if counts == nil {
			continue
		}
		// The most common value is the likely target: name it in the fix.
		values := slices.SortedFunc(maps.Keys(counts), func(a, b string) int { return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b)) })
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = fmt.Sprintf("%d %s", counts[v], v)
		}
		out = append(out, Finding{Rule: NodePlatform, Field: field.NewPath("spec", "template", "spec", "nodeSelector"), Message: fmt.Sprintf(
			"the DaemonSet would run on nodes of %d different %s: %s; an image built for one crash-loops on the others: "+
				"add nodeSelector %s: %s, or skip this rule for an image built for all of them",
			len(values), key, strings.Join(parts, ", "), key, values[0])})
	}
	return out, nil
}
