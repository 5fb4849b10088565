//go:build e2e

package e2e

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestALinuxAgentWithoutAnOSSelectorIsWarnedOfTheWindowsNodeItLandsOn
// holds node-platform to the real controller: with one untainted Windows
// node in the cluster, an agent without a kubernetes.io/os selector is
// warned of it, and the controller does put a pod there; with the selector
// the warning names, no warning, and no pod there.
func TestALinuxAgentWithoutAnOSSelectorIsWarnedOfTheWindowsNodeItLandsOn(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "e2e-platform")
	g := NewWithT(t)
	requireKwok(t, c)
	windows := ns + "-windows"
	c.createNode(t, windows, map[string]string{corev1.LabelOSStable: "windows"}, corev1.Taint{Key: "e2e-unused", Effect: corev1.TaintEffectPreferNoSchedule}, true, nil)

	linuxNodes := len(c.nodes(t, func(n corev1.Node) bool {
		return n.Labels[corev1.LabelOSStable] == "linux" && len(n.Spec.Taints) == 0
	}))
	ds, warnings := c.createWarned(t, daemonSet(ns, "kube-router", "registry.k8s.io/pause:3.10"))
	g.Expect(warnings).To(ContainElement(HavePrefix("[node-platform] spec.template.spec.nodeSelector: the DaemonSet would run on nodes of 2 different kubernetes.io/os: ")))
	g.Expect(warnings).To(ContainElement(ContainSubstring(", 1 windows; an image built for one crash-loops on the others: add nodeSelector kubernetes.io/os: linux")))
	want := predicted(t, warnings)
	g.Expect(want).To(BeNumerically(">", linuxNodes), "the prediction counts the Windows node")
	ds = c.settled(t, ds, want)
	g.Expect(c.nodesOf(t, ds)).To(ContainElement(windows), "the controller puts a pod on the Windows node")

	fixed, warnings := c.createWarned(t, daemonSet(ns, "kube-router-linux", "registry.k8s.io/pause:3.10", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{corev1.LabelOSStable: "linux"}
	}))
	for _, w := range warnings {
		g.Expect(w).NotTo(HavePrefix("[node-platform]"))
	}
	fixed = c.settled(t, fixed, predicted(t, warnings))
	g.Expect(c.nodesOf(t, fixed)).NotTo(ContainElement(windows))
}
