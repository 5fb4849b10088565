package rules

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// lostNodesShown bounds the node names listed in a warning.
const lostNodesShown = 5

// TargetsNodes is the name of the rule that finds DaemonSets that run on no
// node, and the nodes an update takes away.
const TargetsNodes = "targets-nodes"

// TargetsNodesOptions configures targets-nodes.
type TargetsNodesOptions struct {
	// ReportCoverage also reports, as a warning, on how many nodes a
	// DaemonSet that runs somewhere would run, and why the others are left out.
	ReportCoverage bool `json:"reportCoverage,omitempty"`
	// ShrinkEvent is the share of a DaemonSet's eligible nodes that a node
	// change must make ineligible for the EligibleNodesShrank Event.
	ShrinkEvent intstr.IntOrString `json:"shrinkEvent"`
}

// Validate implements policy.Options: shrinkEvent is a percentage in
// (0%, 100%].
func (o *TargetsNodesOptions) Validate(path *field.Path) field.ErrorList {
	v := o.ShrinkEvent
	pct, err := intstr.GetScaledValueFromIntOrPercent(&v, 100, true)
	if v.Type != intstr.String || err != nil || !strings.HasSuffix(v.StrVal, "%") || pct < 1 || pct > 100 {
		return field.ErrorList{field.Invalid(path.Child("shrinkEvent"), v.String(), `must be a percentage from 1% to 100%, such as "50%"`)}
	}
	return nil
}

// Event reasons for what a node change did to a DaemonSet's placement.
const (
	// NoEligibleNodes: no node is eligible any more.
	NoEligibleNodes = "NoEligibleNodes"
	// EligibleNodesShrank: more of the eligible nodes than the policy's
	// shrinkEvent share became ineligible.
	EligibleNodesShrank = "EligibleNodesShrank"
)

// NodeChange judges what a change of the cluster's nodes did to where ds
// runs, as targets-nodes is configured for it: before is the number of nodes
// it was eligible on, deleted how many of those the change deleted, and now
// where it would run after the change. It returns the reason and the note of
// the Event to report, or an empty reason when nothing is worth one. Nodes
// that went away are no surprise, so only those that stay and became
// ineligible count towards a shrink; a DaemonSet left with no node is
// reported whatever the cause.
func NodeChange(p *policy.Policy, ds *appsv1.DaemonSet, before, deleted int, now inventory.Coverage) (reason, note string) {
	if !Applies(p, ds, TargetsNodes) || now.Eligible >= before {
		return "", ""
	}
	if now.Eligible == 0 {
		return NoEligibleNodes, fmt.Sprintf("a node change left the DaemonSet with no node to run on (it had %d): %s", before, now)
	}
	lost := before - deleted - now.Eligible
	share := policy.OptionsOf[*TargetsNodesOptions](p, TargetsNodes).ShrinkEvent
	threshold, _ := intstr.GetScaledValueFromIntOrPercent(&share, before, false)
	if lost <= 0 || lost <= threshold {
		return "", ""
	}
	return EligibleNodesShrank, fmt.Sprintf("a node change made %d of the DaemonSet's %d eligible nodes ineligible, more than the policy's %s: it now runs on %s",
		lost, before, share.String(), now)
}

// TargetsNodes declares the rule.
func (builtin) TargetsNodes() Rule {
	return Rule{
		Spec: policy.Spec{Name: TargetsNodes, Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options { return &TargetsNodesOptions{ShrinkEvent: intstr.FromString("50%")} }},
		Summary: "the DaemonSet runs on at least one node; on UPDATE, which nodes lose their pod",
		Description: "Places the pod template on every node of the live Node inventory exactly as the DaemonSet controller does " +
			"(nodeName, nodeSelector, required node affinity, NoSchedule and NoExecute taints against the template's tolerations and those the controller adds), " +
			"and finds a DaemonSet that would run on no node, with the reason each node is left out; on an UPDATE it also names the nodes that would lose their daemon pod. " +
			"An UPDATE that leaves placement unchanged is only warned about, so a DaemonSet never becomes un-updatable because the cluster changed under it. " +
			"reportCoverage: true also reports where every DaemonSet would run. The webhook's leader also re-evaluates every DaemonSet when nodes change, " +
			"and reports on the DaemonSet, as an Event, one that a node change leaves with no node to run on (NoEligibleNodes) or that loses more than " +
			"shrinkEvent (default 50%) of its eligible nodes to nodes that became ineligible (EligibleNodesShrank).",
		Check: targetsNodes,
	}
}

// targetsNodes finds DaemonSets that would run on no node, and on update warns
// about the nodes that would lose or gain a daemon pod.
func targetsNodes(in *Input) ([]Finding, error) {
	if ready, findings := in.nodesReady(TargetsNodes); !ready {
		return findings, nil
	}
	path := field.NewPath("spec", "template", "spec")
	cov, err := in.Coverage()
	if err != nil {
		return nil, err
	}
	var out []Finding
	if cov.Eligible == 0 {
		f := Finding{Rule: TargetsNodes, Field: path, Message: "the DaemonSet would run on no node: " + cov.String()}
		// An update that leaves placement alone must stay possible even if
		// the cluster changed under the DaemonSet since it was created.
		if in.Operation == Update && in.placementUnchanged() {
			f.Action = policy.Warn
		}
		out = append(out, f)
	} else if policy.OptionsOf[*TargetsNodesOptions](in.Policy, TargetsNodes).ReportCoverage {
		out = append(out, Finding{Rule: TargetsNodes, Action: policy.Warn, Field: path, Message: "the DaemonSet would run on " + cov.String()})
	}
	if in.Operation == Update {
		lost, gained, err := in.Nodes.Moved(&in.OldObject.Spec.Template.Spec, &in.Object.Spec.Template.Spec)
		if err != nil {
			return nil, err
		}
		if msg := movedMessage(lost, gained); msg != "" {
			out = append(out, Finding{Rule: TargetsNodes, Action: policy.Warn, Field: path, Message: msg})
		}
	}
	return out, nil
}

// movedMessage says, in one line, which nodes an update takes a daemon pod
// from and gives one to. Placement lives in the pod template, so such an
// update always rolls every pod, and the line says so.
func movedMessage(lost, gained []string) string {
	var parts []string
	if len(lost) > 0 {
		parts = append(parts, fmt.Sprintf("%d nodes would lose their daemon pod: %s", len(lost), nameList(lost)))
	}
	switch {
	case len(gained) > 0 && len(lost) > 0:
		parts = append(parts, fmt.Sprintf("%d would gain one: %s", len(gained), nameList(gained)))
	case len(gained) > 0:
		parts = append(parts, fmt.Sprintf("%d nodes would gain a daemon pod: %s", len(gained), nameList(gained)))
	default:
		if len(lost) == 0 {
			return ""
		}
	}
	return strings.Join(parts, "; ") + "; the update changes the pod template, so it rolls every daemon pod"
}

func nameList(names []string) string {
	if len(names) <= lostNodesShown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:lostNodesShown], ", "), len(names)-lostNodesShown)
}
