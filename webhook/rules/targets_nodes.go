package rules

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// lostNodesShown bounds the node names listed in a warning.
const lostNodesShown = 5

// targetsNodes finds DaemonSets that would run on no node, and on update warns
// about nodes that would lose their daemon pod.
func targetsNodes(in *Input) ([]Finding, error) {
	if ready, findings := in.nodesReady(policy.TargetsNodes); !ready {
		return findings, nil
	}
	path := field.NewPath("spec", "template", "spec")
	cov, err := in.Coverage()
	if err != nil {
		return nil, err
	}
	var out []Finding
	if cov.Eligible == 0 {
		f := Finding{Rule: policy.TargetsNodes, Field: path, Message: "the DaemonSet would run on no node: " + cov.String()}
		// An update that leaves placement alone must stay possible even if
		// the cluster changed under the DaemonSet since it was created.
		if in.Operation == Update && in.placementUnchanged() {
			f.Action = policy.Warn
		}
		out = append(out, f)
	} else if in.Policy.Rules.TargetsNodes.ReportCoverage {
		out = append(out, Finding{Rule: policy.TargetsNodes, Action: policy.Warn, Field: path, Message: "the DaemonSet would run on " + cov.String()})
	}
	if in.Operation == Update {
		lost, err := in.Nodes.Lost(&in.OldObject.Spec.Template.Spec, &in.Object.Spec.Template.Spec)
		if err != nil {
			return nil, err
		}
		if len(lost) > 0 {
			out = append(out, Finding{Rule: policy.TargetsNodes, Action: policy.Warn, Field: path,
				Message: fmt.Sprintf("%d nodes would lose their daemon pod: %s", len(lost), nameList(lost))})
		}
	}
	return out, nil
}

func nameList(names []string) string {
	if len(names) <= lostNodesShown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:lostNodesShown], ", "), len(names)-lostNodesShown)
}
