package rules

import (
	"cmp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// mixedCluster has Linux nodes of two architectures, a Windows node, and a
// node without platform labels.
func mixedCluster(windowsTaint ...corev1.Taint) *inventory.Inventory {
	platform := func(os, arch string) []string {
		return []string{corev1.LabelOSStable, os, corev1.LabelArchStable, arch}
	}
	return inventory.New(
		fixture.Node("linux-1", platform("linux", "amd64")),
		fixture.Node("linux-2", platform("linux", "amd64")),
		fixture.Node("linux-3", platform("linux", "amd64")),
		fixture.Node("linux-arm-1", platform("linux", "arm64")),
		fixture.Node("windows-1", platform("windows", "amd64"), windowsTaint...),
		fixture.Node("bare-1", nil),
	)
}

func TestNodePlatform(t *testing.T) {
	linuxOnly := withNodeSelector(corev1.LabelOSStable, "linux")
	tests := []struct {
		name       string
		op         Operation
		old, ds    *appsv1.DaemonSet
		nodes      *inventory.Inventory
		singleArch bool
		want       []string
	}{
		{
			name:  "warns of a Linux agent without an OS selector on a cluster with a Windows node, naming the fix",
			ds:    fixture.DaemonSet("fluent-bit"),
			nodes: mixedCluster(),
			want: []string{"the DaemonSet would run on nodes of 2 different kubernetes.io/os: 4 linux, 1 windows; an image built for one crash-loops on the others: " +
				"add nodeSelector kubernetes.io/os: linux, or skip this rule for an image built for all of them"},
		},
		{
			name:  "says nothing of an agent that selects its OS",
			ds:    fixture.DaemonSet("fluent-bit", linuxOnly),
			nodes: mixedCluster(),
		},
		{
			name:  "says nothing when the Windows nodes carry a taint the agent does not tolerate",
			ds:    fixture.DaemonSet("fluent-bit"),
			nodes: mixedCluster(fixture.Taint("os", "windows", corev1.TaintEffectNoSchedule)),
		},
		{
			name:       "warns of several architectures when the policy says images have one",
			ds:         fixture.DaemonSet("fluent-bit", linuxOnly),
			nodes:      mixedCluster(),
			singleArch: true,
			want:       []string{"nodes of 2 different kubernetes.io/arch: 3 amd64, 1 arm64; an image built for one crash-loops on the others: add nodeSelector kubernetes.io/arch: amd64"},
		},
		{
			name:  "says nothing of architectures by default: most images are multi-arch",
			ds:    fixture.DaemonSet("fluent-bit", linuxOnly),
			nodes: mixedCluster(),
		},
		{
			name:  "says nothing of an update that leaves placement alone",
			op:    Update,
			old:   fixture.DaemonSet("fluent-bit"),
			ds:    fixture.DaemonSet("fluent-bit", withImage("fluent-bit:4")),
			nodes: mixedCluster(),
		},
		{
			name:  "warns of an update that changes placement onto several systems",
			op:    Update,
			old:   fixture.DaemonSet("fluent-bit", linuxOnly),
			ds:    fixture.DaemonSet("fluent-bit"),
			nodes: mixedCluster(),
			want:  []string{"2 different kubernetes.io/os: 4 linux, 1 windows"},
		},
		{
			name:  "does not count nodes without the label as another system",
			ds:    fixture.DaemonSet("fluent-bit"),
			nodes: inventory.New(fixture.Node("linux-1", []string{corev1.LabelOSStable, "linux"}), fixture.Node("bare-1", nil)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default(Builtin())
			policy.OptionsOf[*NodePlatformOptions](p, NodePlatform).SingleArch = tt.singleArch
			expectRuleFindings(t, &Input{Operation: cmp.Or(tt.op, Create), Object: tt.ds, OldObject: tt.old, Policy: p, Nodes: tt.nodes}, NodePlatform, tt.want)
		})
	}
}
