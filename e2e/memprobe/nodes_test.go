package main

import (
	"net"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

func TestEveryNodeOfA65536NodeClusterGetsItsOwnPodCIDR(t *testing.T) {
	_, cgnat, _ := net.ParseCIDR("100.64.0.0/10")
	seen := map[string]int{}
	for i := range 1 << 16 {
		cidr := realNode(fixture.Node("n", nil), i, nil, metav1.Now()).Spec.PodCIDR
		ip, network, err := net.ParseCIDR(cidr)
		if err != nil || !ip.Equal(network.IP) || !cgnat.Contains(ip) {
			t.Fatalf("node %d: pod CIDR %q is not a network inside %s (%v)", i, cidr, cgnat, err)
		}
		if j, ok := seen[cidr]; ok {
			t.Fatalf("nodes %d and %d share pod CIDR %s", j, i, cidr)
		}
		seen[cidr] = i
	}
}
