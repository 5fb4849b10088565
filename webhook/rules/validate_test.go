package rules

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// want is an expected finding; message is a substring of the message.
type want struct {
	rule, action, field, message string
}

// cluster is a small cluster with the variety of a real one: tainted control
// plane nodes, ssd and hdd workers and a tainted gpu pool.
func cluster() []*corev1.Node {
	gpuTaint := fixture.Taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)
	return []*corev1.Node{
		fixture.Node("cp-1", []string{"node-role.kubernetes.io/control-plane", ""}, fixture.ControlPlaneTaint),
		fixture.Node("ssd-1", []string{"disktype", "ssd"}),
		fixture.Node("ssd-2", []string{"disktype", "ssd"}),
		fixture.Node("ssd-3", []string{"disktype", "ssd"}),
		fixture.Node("hdd-1", []string{"disktype", "hdd"}),
		fixture.Node("hdd-2", []string{"disktype", "hdd"}),
		fixture.Node("gpu-1", []string{"disktype", "ssd", "gpu", "true"}, gpuTaint),
		fixture.Node("gpu-2", []string{"disktype", "ssd", "gpu", "true"}, gpuTaint),
	}
}

func withNodeSelector(pairs ...string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{}
		for i := 0; i+1 < len(pairs); i += 2 {
			ds.Spec.Template.Spec.NodeSelector[pairs[i]] = pairs[i+1]
		}
	}
}

func withTolerations(ts ...corev1.Toleration) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Tolerations = ts }
}

func withMaxUnavailable(v intstr.IntOrString) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &v }
}

func TestValidate(t *testing.T) {
	denyTargets := func(p *policy.Policy) { p.Rules[TargetsNodes].Action = policy.Deny }
	tests := []struct {
		name      string
		old       *appsv1.DaemonSet // nil means CREATE
		ds        *appsv1.DaemonSet
		policy    func(*policy.Policy)
		nodes     []*corev1.Node
		noNodes   bool
		notSynced bool
		view      Nodes // replaces the inventory of nodes
		want      []want
		wantErrs  []string
	}{
		{
			name: "allows a log collector that runs on the worker nodes",
			ds:   fixture.DaemonSet("fluentd"),
		},
		{
			name: "rejects an update that changes the selector, saying how to replace the DaemonSet",
			old:  fixture.DaemonSet("fluentd"),
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchLabels["tier"] = "logging"
				ds.Spec.Template.Labels["tier"] = "logging"
			}),
			want: []want{{"selector-immutable", "deny", "spec.selector", "kubectl delete daemonset fluentd -n logging --cascade=orphan"}},
		},
		{
			name: "allows an update that keeps the selector and changes the image",
			old:  fixture.DaemonSet("fluentd"),
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "fluentd:v2" }),
		},
		{
			name: "treats a selector whose empty expression list became nil as unchanged",
			old:  fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{} }),
			ds:   fixture.DaemonSet("fluentd"),
		},
		{
			name: "rejects an empty selector",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Selector = &metav1.LabelSelector{} }),
			want: []want{{"selector-matches-template", "deny", "spec.selector", "the selector is empty"}},
		},
		{
			name: "rejects a missing selector",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Selector = nil }),
			want: []want{{"selector-matches-template", "deny", "spec.selector", "the selector is empty"}},
		},
		{
			name: "rejects a selector label that the template lacks, naming the label",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Selector.MatchLabels["tier"] = "logging" }),
			want: []want{{"selector-matches-template", "deny", "spec.selector.matchLabels[tier]", "requires label tier=logging, which the pod template lacks"}},
		},
		{
			name: "rejects a selector label whose value differs from the template's, naming both",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels["app.kubernetes.io/name"] = "fluent-bit" }),
			want: []want{{"selector-matches-template", "deny", "spec.selector.matchLabels[app.kubernetes.io/name]", "but the pod template has app.kubernetes.io/name=fluent-bit"}},
		},
		{
			name: "allows matchExpressions In, NotIn, Exists and DoesNotExist that the template satisfies",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Labels["tier"] = "logging"
				ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"logging", "metrics"}},
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}},
					{Key: "app.kubernetes.io/name", Operator: metav1.LabelSelectorOpExists},
					{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
				}
			}),
		},
		{
			name: "rejects each matchExpression the template fails: In, NotIn, Exists and DoesNotExist",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Labels["tier"] = "web"
				ds.Spec.Template.Labels["canary"] = "true"
				ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"logging"}},
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}},
					{Key: "zone", Operator: metav1.LabelSelectorOpExists},
					{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
				}
			}),
			want: []want{
				{"selector-matches-template", "deny", "spec.selector.matchExpressions[0]", `requires "tier in (logging)", but the pod template has tier=web`},
				{"selector-matches-template", "deny", "spec.selector.matchExpressions[1]", `requires "tier notin (web)", but the pod template has tier=web`},
				{"selector-matches-template", "deny", "spec.selector.matchExpressions[2]", `requires "zone", which the pod template's labels do not satisfy`},
				{"selector-matches-template", "deny", "spec.selector.matchExpressions[3]", `requires "!canary", but the pod template has canary=true`},
			},
		},
		{
			name: "rejects an invalid matchExpression operator with the parser's reason",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}
			}),
			want: []want{{"selector-matches-template", "deny", "spec.selector.matchExpressions[0]", `"Near" is not a valid label selector operator`}},
		},
		{
			name: "rejects a selector label whose key is not a valid label key (found by fuzzing)",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchLabels["\xff"] = "0"
				ds.Spec.Template.Labels["\xff"] = "0"
			}),
			want: []want{{"selector-matches-template", "deny", "spec.selector.matchLabels[\xff]", "the selector label is invalid"}},
		},
		{
			name: "rejects a template restartPolicy of OnFailure",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }),
			want: []want{{"restart-policy-always", "deny", "spec.template.spec.restartPolicy", "restartPolicy is OnFailure"}},
		},
		{
			name: "warns when a nodeSelector matches no node, counting the reasons",
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")),
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "would run on no node: 0 of 8 nodes: 8 lack label disktype=nvme"}},
		},
		{
			name:   "denies a DaemonSet that targets no node when the policy says deny",
			ds:     fixture.DaemonSet("fluentd", withNodeSelector("gpu", "true")),
			policy: denyTargets,
			want:   []want{{"targets-nodes", "deny", "spec.template.spec", "0 of 8 nodes: 6 lack label gpu=true, 2 have untolerated taint dedicated=gpu:NoSchedule"}},
		},
		{
			name: "counts a node as eligible when a toleration covers its taint",
			ds: fixture.DaemonSet("fluentd", withNodeSelector("gpu", "true"),
				withTolerations(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule})),
			policy: denyTargets,
		},
		{
			name: "ignores PreferNoSchedule taints, as the DaemonSet controller does",
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("pool", "spot")),
			nodes: []*corev1.Node{fixture.Node("spot-1", []string{"pool", "spot"},
				fixture.Taint("spot", "", corev1.TaintEffectPreferNoSchedule))},
			policy: denyTargets,
		},
		{
			name: "tolerates the taints the DaemonSet controller tolerates itself, such as unschedulable",
			ds:   fixture.DaemonSet("fluentd"),
			nodes: []*corev1.Node{fixture.Node("cordoned", nil,
				fixture.Taint(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule))},
			policy: denyTargets,
		},
		{
			name: "tolerates network-unavailable only for host-network pods",
			ds:   fixture.DaemonSet("fluentd"),
			nodes: []*corev1.Node{fixture.Node("no-cni", nil,
				fixture.Taint(corev1.TaintNodeNetworkUnavailable, "", corev1.TaintEffectNoSchedule))},
			policy: denyTargets,
			want:   []want{{"targets-nodes", "deny", "spec.template.spec", "1 have untolerated taint node.kubernetes.io/network-unavailable:NoSchedule"}},
		},
		{
			name: "lets a host-network CNI agent run where the network is not ready yet",
			ds:   fixture.DaemonSet("calico-node", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.HostNetwork = true }),
			nodes: []*corev1.Node{fixture.Node("no-cni", nil,
				fixture.Taint(corev1.TaintNodeNetworkUnavailable, "", corev1.TaintEffectNoSchedule))},
			policy: denyTargets,
		},
		{
			name: "explains a required node affinity expression that no node matches",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = requiredAffinity(corev1.NodeSelectorRequirement{Key: "disktype", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvme", "optane"}})
			}),
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "8 do not match required node affinity disktype In [nvme, optane]"}},
		},
		{
			name: "evaluates matchFields on metadata.name node by node",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = requiredAffinity()
				ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields =
					[]corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"gone-1"}}}
			}),
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "8 do not match required node affinity field metadata.name In [gone-1]"}},
		},
		{
			name: "counts a template pinned by spec.nodeName to a missing node as running nowhere",
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "gone-1" }),
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "8 are not node gone-1, which spec.nodeName names"}},
		},
		{
			name: "warns that placement was not checked while the inventory has not synced, and never denies",
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")), policy: denyTargets, notSynced: true,
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "the node inventory has not synced yet"}},
		},
		{
			name: "says placement was not checked when no node information exists",
			ds:   fixture.DaemonSet("fluentd"), noNodes: true,
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "no node information was given"}},
		},
		{
			name:   "reports the coverage of a DaemonSet that runs somewhere when the policy asks",
			ds:     fixture.DaemonSet("fluentd", withNodeSelector("disktype", "ssd")),
			policy: func(p *policy.Policy) { policy.OptionsOf[*TargetsNodesOptions](p, TargetsNodes).ReportCoverage = true },
			want:   []want{{"targets-nodes", "warn", "spec.template.spec", "the DaemonSet would run on 3 of 8 nodes: 3 lack label disktype=ssd, 2 have untolerated taint dedicated=gpu:NoSchedule"}},
		},
		{
			name: "warns on update which nodes would lose their daemon pod",
			old:  fixture.DaemonSet("fluentd"),
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("disktype", "ssd")),
			want: []want{{"targets-nodes", "warn", "spec.template.spec",
				"2 nodes would lose their daemon pod: hdd-1, hdd-2; the update changes the pod template, so it rolls every daemon pod"}},
		},
		{
			name: "warns on update which nodes would gain a daemon pod",
			old:  fixture.DaemonSet("fluentd", withNodeSelector("disktype", "hdd")),
			ds:   fixture.DaemonSet("fluentd"),
			want: []want{{"targets-nodes", "warn", "spec.template.spec",
				"3 nodes would gain a daemon pod: ssd-1, ssd-2, ssd-3; the update changes the pod template, so it rolls every daemon pod"}},
		},
		{
			name: "says in one line which nodes an update moves the daemon pods from and to",
			old:  fixture.DaemonSet("fluentd", withNodeSelector("disktype", "hdd")),
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("disktype", "ssd")),
			want: []want{{"targets-nodes", "warn", "spec.template.spec",
				"2 nodes would lose their daemon pod: hdd-1, hdd-2; 3 would gain one: ssd-1, ssd-2, ssd-3; the update changes the pod template, so it rolls every daemon pod"}},
		},
		{
			name:   "keeps an update that leaves placement alone possible, even if it targets no node today",
			old:    fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")),
			ds:     fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "obs"} }),
			policy: denyTargets,
			want:   []want{{"targets-nodes", "warn", "spec.template.spec", "would run on no node"}},
		},
		{
			name: "never denies an object being deleted, so its finalizers can be removed",
			old:  fixture.DaemonSet("fluentd", withNodeSelector("disktype", "ssd")),
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) {
				ds.DeletionTimestamp = &metav1.Time{}
			}),
			policy: denyTargets,
			want: []want{
				{"targets-nodes", "warn", "spec.template.spec", "would run on no node"},
				{"targets-nodes", "warn", "spec.template.spec", "3 nodes would lose their daemon pod"},
			},
		},
		{
			name: "never denies an object being deleted, even for a rule that cannot be evaluated and whose onError is deny",
			old:  fixture.DaemonSet("fluentd"),
			ds:   fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) { ds.DeletionTimestamp = &metav1.Time{}; ds.Finalizers = nil }),
			policy: func(p *policy.Policy) {
				p.Rules[TargetsNodes].OnError = policy.OnErrorDeny
				p.Rules[RolloutBudget].Action = policy.Off
			},
			view:     panickingNodes{},
			want:     []want{{"targets-nodes", "warn", "spec", "its onError is deny: panic: a bug"}},
			wantErrs: []string{"rule targets-nodes: panic: a bug"},
		},
		{
			name: "warns on create about a selector on a label that changes between releases",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchLabels["helm.sh/chart"] = "fluentd-1.2.3"
				ds.Spec.Template.Labels["helm.sh/chart"] = "fluentd-1.2.3"
				ds.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "version", Operator: metav1.LabelSelectorOpExists}}
				ds.Spec.Template.Labels["version"] = "1.2.3"
			}),
			want: []want{
				{"selector-stable-labels", "warn", "spec.selector.matchLabels[helm.sh/chart]", "whose value changes between releases"},
				{"selector-stable-labels", "warn", "spec.selector.matchExpressions[0].key", "label version"},
			},
		},
		{
			name: "does not repeat the unstable selector warning on update, when nothing can be done",
			old: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchLabels["version"] = "1"
				ds.Spec.Template.Labels["version"] = "1"
			}),
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Selector.MatchLabels["version"] = "1"
				ds.Spec.Template.Labels["version"] = "1"
			}),
		},
		{
			name: "warns when one rollout step would take down more than the policy's share of nodes",
			ds:   fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromString("60%"))),
			want: []want{{"rollout-budget", "warn", "spec.updateStrategy.rollingUpdate.maxUnavailable", "take down the daemon pods of 3 of the 5 targeted nodes, more than the policy allows (50%, 2 nodes)"}},
		},
		{
			name:   "denies an excessive maxUnavailable when the policy says deny",
			ds:     fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(3))),
			policy: func(p *policy.Policy) { p.Rules[RolloutBudget].Action = policy.Deny },
			want:   []want{{"rollout-budget", "deny", "spec.updateStrategy.rollingUpdate.maxUnavailable", "3 of the 5 targeted nodes"}},
		},
		{
			name:  "allows one pod at a time on a single node, the slowest rollout there is",
			ds:    fixture.DaemonSet("fluentd"),
			nodes: []*corev1.Node{fixture.Node("only", nil)},
		},
		{
			name: "allows a surge rollout that takes no pod down",
			ds: fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(0)), func(ds *appsv1.DaemonSet) {
				surge := intstr.FromString("100%")
				ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = &surge
			}),
		},
		{
			name: "ignores the rollout budget of an OnDelete DaemonSet",
			ds: fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromString("100%")), func(ds *appsv1.DaemonSet) {
				ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
			}),
		},
		{
			name:   "switches a rule off when the policy says off",
			ds:     fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")),
			policy: func(p *policy.Policy) { p.Rules[TargetsNodes].Action = policy.Off },
		},
		{
			name: "exempts a namespace from the rules the policy lists for it",
			ds:   fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")),
			policy: func(p *policy.Policy) {
				p.Exemptions = []policy.Exemption{{Namespaces: []string{"logging"}, Rules: []string{TargetsNodes}}}
			},
		},
		{
			name: "skips the rules named in the object's skip annotation",
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) {
				ds.Annotations = map[string]string{SkipAnnotation: "rollout-budget, targets-nodes"}
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			want: []want{{"restart-policy-always", "deny", "spec.template.spec.restartPolicy", "restartPolicy is Never"}},
		},
		{
			name:  "says which nodes lack a label that the nodeSelector wants present with an empty value",
			ds:    fixture.DaemonSet("kube-proxy-cp", withNodeSelector("node-role.kubernetes.io/control-plane", "")),
			nodes: append(cluster(), fixture.Node("cp-2", []string{"node-role.kubernetes.io/control-plane", "true"})),
			want: []want{{"targets-nodes", "warn", "spec.template.spec",
				`would run on no node: 0 of 9 nodes: 8 lack label node-role.kubernetes.io/control-plane="", 1 have untolerated taint node-role.kubernetes.io/control-plane:NoSchedule`}},
		},
		{
			name: "explains a required term that is empty, which matches no node",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = requiredAffinity()
			}),
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "8 match no node: the only required node affinity term is empty"}},
		},
		{
			name: "counts several ORed required terms, naming how many none matched",
			ds: fixture.DaemonSet("fluentd", withTolerations(controlPlaneToleration), func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = requiredAffinity(corev1.NodeSelectorRequirement{Key: "disktype", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}})
				terms := &ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
				*terms = append(*terms, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.NodeSelectorOpExists}}})
			}),
			policy: func(p *policy.Policy) { policy.OptionsOf[*TargetsNodesOptions](p, TargetsNodes).ReportCoverage = true },
			want:   []want{{"targets-nodes", "warn", "spec.template.spec", "would run on 3 of 8 nodes: 5 match none of the 2 required node affinity terms"}},
		},
		{
			name: "answers for a rule that panics as its onError says, and reports the panic, the other rules still judging",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			policy: denyTargets,
			view:   panickingNodes{},
			want: []want{{"node-platform", "warn", "spec", "could not be evaluated"}, {"restart-policy-always", "deny", "spec.template.spec.restartPolicy", "restartPolicy is Never"},
				{"rollout-budget", "warn", "spec", "could not be evaluated"}, {"targets-nodes", "warn", "spec", "the rule could not be evaluated, so it was not applied (its onError is allow): panic: a bug"}},
			wantErrs: []string{"rule node-platform: panic: a bug", "rule rollout-budget: panic: a bug", "rule targets-nodes: panic: a bug"},
		},
		{
			name: "denies for a rule that cannot be evaluated when its onError says deny",
			ds:   fixture.DaemonSet("fluentd"),
			policy: func(p *policy.Policy) {
				p.Rules[TargetsNodes].OnError = policy.OnErrorDeny
				p.Rules[RolloutBudget].Action = policy.Off
			},
			view:     panickingNodes{},
			want:     []want{{"node-platform", "warn", "spec", "could not be evaluated, so it was not applied"}, {"targets-nodes", "deny", "spec", "the rule could not be evaluated, and its onError is deny: panic: a bug"}},
			wantErrs: []string{"rule node-platform: panic: a bug", "rule targets-nodes: panic: a bug"},
		},
		{
			name: "refuses to start a placement question over the work bound, and answers as onError says",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Spec.Template.Spec.Affinity = fixture.RequiredTerms(5000, corev1.LabelHostname, func(i int) string { return fmt.Sprintf("node-%d", i) })
			}),
			nodes: fixture.Cluster(400, 4),
			// node-platform asks nothing costly of a cluster of one OS.
			want: []want{{"rollout-budget", "warn", "spec", "placement is too expensive to check"},
				{"targets-nodes", "warn", "spec", "placement is too expensive to check: 400 groups of alike nodes"}},
			wantErrs: []string{"rule rollout-budget: placement is too expensive to check",
				"rule targets-nodes: placement is too expensive to check: 400 groups of alike nodes"},
		},
		{
			name: "judges an image-only update by the image, not by the toleration the policy now adds",
			old:  fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme")),
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), withImage("fluentd:v2"), withTolerations(controlPlaneToleration),
				withAnnotation(MutatedAnnotation, "default-tolerations")),
			policy: func(p *policy.Policy) {
				denyTargets(p)
				policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations).Tolerations = []corev1.Toleration{controlPlaneToleration}
			},
			want: []want{{"targets-nodes", "warn", "spec.template.spec", "would run on no node"}},
		},
		{
			name:  "does not count a step larger than the targeted nodes as more nodes than there are",
			ds:    fixture.DaemonSet("fluentd", withMaxUnavailable(intstr.FromInt32(4))),
			nodes: []*corev1.Node{fixture.Node("a", nil), fixture.Node("b", nil)},
			policy: func(p *policy.Policy) {
				policy.OptionsOf[*RolloutBudgetOptions](p, RolloutBudget).MaxUnavailable = intstr.FromString("50%")
			},
			want: []want{{"rollout-budget", "warn", "spec.updateStrategy.rollingUpdate.maxUnavailable", "take down the daemon pods of 2 of the 2 targeted nodes"}},
		},
		{
			name: "refuses, with retry, a new DaemonSet that reached validation without the mutation",
			ds:   fixture.DaemonSet("fluentd"),
			policy: func(p *policy.Policy) {
				policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations).Tolerations = []corev1.Toleration{controlPlaneToleration}
			},
			want: []want{{"default-tolerations", "deny", "spec", "the mutating webhook has not applied this rule, which it fails open on when it cannot be reached; retry the request"}},
		},
		{
			name: "warns instead of refusing when the mutation ran but something set the field back, so that a retry cannot loop",
			ds: fixture.DaemonSet("fluentd", withAnnotation(MutatedAnnotation, "rolling-update-defaults"), func(ds *appsv1.DaemonSet) {
				ds.ManagedFields = []metav1.ManagedFieldsEntry{updateEntry("kubectl-create", `{"f:spec":{"f:updateStrategy":{"f:rollingUpdate":{"f:maxUnavailable":{}}}}}`)}
			}),
			policy: func(p *policy.Policy) {
				policy.OptionsOf[*RollingUpdateDefaultsOptions](p, RollingUpdateDefaults).MaxUnavailable = ptr.To(intstr.FromString("10%"))
			},
			want: []want{{"rolling-update-defaults", "warn", "spec", "has applied this rule to this DaemonSet, but the object reached validation without its change"}},
		},
		{
			// This request's own entry (changed since the stored object) owns
			// the tolerations too, and is not "someone else".
			name: "warns, naming the other field manager, when someone else owns the fields the mutation sets",
			old: fixture.DaemonSet("fluentd", withManagedFields(
				updateEntry("helm", `{"f:spec":{"f:template":{"f:spec":{"f:tolerations":{}}}}}`),
				updateEntry("kubectl-edit", `{"f:spec":{"f:template":{"f:spec":{"f:tolerations":{}}}}}`))),
			ds: fixture.DaemonSet("fluentd", withImage("fluentd:v2"), withManagedFields(
				updateEntry("helm", `{"f:spec":{"f:template":{"f:spec":{"f:tolerations":{}}}}}`),
				updateEntry("kubectl-edit", `{"f:spec":{"f:template":{"f:spec":{"f:containers":{},"f:tolerations":{}}}}}`))),
			policy: func(p *policy.Policy) {
				policy.OptionsOf[*DefaultTolerationsOptions](p, DefaultTolerations).Tolerations = []corev1.Toleration{controlPlaneToleration}
			},
			want: []want{{"default-tolerations", "warn", "spec", "the fields it sets are owned by helm;"}},
		},
		{
			name: "skips under * only the rules the policy lets be skipped, and says so of a rule at deny that fires",
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) {
				ds.Annotations = map[string]string{SkipAnnotation: "*"}
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			want: []want{{"restart-policy-always", "deny", "spec.template.spec.restartPolicy", "restartPolicy is Never"},
				{"restart-policy-always", "warn", "metadata.annotations[daemonset-guard.io/skip]", "the skip annotation asks to skip this rule, but the policy does not let it be skipped"}},
		},
		{
			name: "enforces a rule at deny that the annotation names, and says nothing of it when it finds nothing",
			ds: fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
				ds.Annotations = map[string]string{SkipAnnotation: "restart-policy-always,selector-matches-template"}
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			want: []want{{"restart-policy-always", "deny", "spec.template.spec.restartPolicy", "restartPolicy is Never"},
				{"restart-policy-always", "warn", "metadata.annotations[daemonset-guard.io/skip]", "does not let it be skipped"}},
		},
		{
			name: "skips a rule at deny that the policy lists as skippable",
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) {
				ds.Annotations = map[string]string{SkipAnnotation: "restart-policy-always, targets-nodes"}
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			policy: func(p *policy.Policy) {
				p.SkipAnnotation = &policy.SkipAnnotation{Rules: []string{RestartPolicyAlways}}
				p.Rules[TargetsNodes].Action = policy.Deny
			},
			want: []want{{"targets-nodes", "deny", "spec.template.spec", "would run on no node"},
				{"targets-nodes", "warn", "metadata.annotations[daemonset-guard.io/skip]", "does not let it be skipped"}},
		},
		{
			name: "skips every rule under * when the policy lists *",
			ds: fixture.DaemonSet("fluentd", withNodeSelector("disktype", "nvme"), func(ds *appsv1.DaemonSet) {
				ds.Annotations = map[string]string{SkipAnnotation: "*"}
				ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			policy: func(p *policy.Policy) { p.SkipAnnotation = &policy.SkipAnnotation{Rules: []string{"*"}} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default(Builtin())
			if tt.policy != nil {
				tt.policy(p)
			}
			nodes := tt.nodes
			if nodes == nil {
				nodes = cluster()
			}
			in := &Input{Operation: Create, Object: tt.ds, OldObject: tt.old, Policy: p}
			if tt.old != nil {
				in.Operation = Update
			}
			switch {
			case tt.view != nil:
				in.Nodes = tt.view
			case tt.notSynced:
				in.Nodes = unsynced{inventory.New(nodes...)}
			case !tt.noNodes:
				in.Nodes = inventory.New(nodes...)
			}
			findings, errs := Builtin().Validate(in)
			assertFindings(t, findings, tt.want)
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("rule errors %v, want %q", errs, tt.wantErrs)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.wantErrs[i]) {
					t.Errorf("rule error %d: %v, want %q", i, e, tt.wantErrs[i])
				}
			}
		})
	}
}

// panickingNodes is a node view that panics, standing for a bug in a rule.
type panickingNodes struct{}

func (panickingNodes) Synced() bool { return true }
func (panickingNodes) Coverage(*corev1.PodSpec) (inventory.Coverage, error) {
	panic("a bug")
}
func (panickingNodes) Moved(*corev1.PodSpec, *corev1.PodSpec) ([]string, []string, error) {
	panic("a bug")
}
func (panickingNodes) NotReady(*corev1.PodSpec) (int, error) { panic("a bug") }
func (panickingNodes) Mixed(*corev1.PodSpec, string) (map[string]int, error) {
	panic("a bug")
}

func updateEntry(manager, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
}

func withManagedFields(entries ...metav1.ManagedFieldsEntry) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.ManagedFields = entries }
}

// unsynced is an inventory whose informer has not delivered its first list.
type unsynced struct{ *inventory.Inventory }

func (unsynced) Synced() bool { return false }

func requiredAffinity(reqs ...corev1.NodeSelectorRequirement) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: reqs}},
		},
	}}
}

func assertFindings(t *testing.T, got []Finding, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(wants), describeFindings(got))
	}
	for i, w := range wants {
		g := got[i]
		if g.Rule != w.rule || string(g.Action) != w.action || g.Field.String() != w.field || !strings.Contains(g.Message, w.message) {
			t.Errorf("finding %d:\n got  %s %s %s: %s\n want %s %s %s: ...%s...", i, g.Rule, g.Action, g.Field, g.Message, w.rule, w.action, w.field, w.message)
		}
	}
}

func describeFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + string(f.Action) + " " + f.String() + "\n")
	}
	return b.String()
}
