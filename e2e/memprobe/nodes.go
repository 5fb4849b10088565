package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// nodeClasses is how many pools (equal labels and taints) the Nodes fall
// into, as in the handler benchmarks.
const nodeClasses = 20

// createNodes creates count realistic Nodes and waits until they are all
// Ready and the node lifecycle controller has lifted the not-ready taint that
// the API server gives every new Node, so that the Nodes no longer change
// when they are measured.
func createNodes(ctx context.Context, cfg *rest.Config, count, workers int, out io.Writer) error {
	cfg = rest.CopyConfig(cfg)
	// Creates must wait for the API server, not for the client's rate limiter.
	cfg.QPS, cfg.Burst = 5000, 5000
	// Protobuf costs the API server and this process less than JSON.
	cfg.ContentType = runtime.ContentTypeProtobuf
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	nodes := fixture.Cluster(count, nodeClasses)
	images := pulledImages()
	start := time.Now()
	err = bench.ForEach(ctx, len(nodes), workers, func(ctx context.Context, i int) error {
		_, err := client.CoreV1().Nodes().Create(ctx, realNode(nodes[i], i, images, metav1.Now()), metav1.CreateOptions{})
		// A Node left by an earlier run is as good as a new one.
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Node %s: %w", nodes[i].Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	created := time.Since(start)
	total, err := awaitReady(ctx, client, count)
	if err != nil {
		return err
	}
	stored, err := client.CoreV1().Nodes().Get(ctx, nodes[0].Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	size, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created %d Nodes in %s; all %d Nodes of the cluster Ready and untainted after %s; one is %.1f KB of JSON as stored\n",
		count, created.Round(time.Second), total, time.Since(start).Round(time.Second), float64(len(size))/1024)
	return nil
}

// awaitReady waits until the cluster has at least want Nodes, all Ready and
// free of the taints the node lifecycle controller keeps on Nodes that are
// not, and returns how many there are. It watches rather than lists: listing
// thousands of Nodes every few seconds would take the CPU that the cluster
// needs to settle them.
func awaitReady(ctx context.Context, client kubernetes.Interface, want int) (int, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	// Shutdown waits for the informer, which stops when ctx is cancelled:
	// deferred first, it runs after cancel.
	defer factory.Shutdown()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lister := factory.Core().V1().Nodes().Lister()
	factory.Start(ctx.Done())
	var total, pending int
	// kwok and the node lifecycle controller settle a few thousand Nodes a
	// minute on two cores, and fewer the more there are: 50,000 have taken
	// more than 15 minutes.
	timeout := max(15*time.Minute, time.Duration(want)*40*time.Millisecond)
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(context.Context) (bool, error) {
		nodes, err := lister.List(labels.Everything())
		if err != nil {
			return false, err
		}
		total, pending = len(nodes), 0
		for _, n := range nodes {
			if !ready(n) {
				pending++
			}
		}
		return total >= want && pending == 0, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for %d Nodes to be Ready (%d of %d are not): %w", want, pending, total, err)
	}
	return total, nil
}

func ready(n *corev1.Node) bool {
	if slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	}) {
		return false
	}
	return slices.ContainsFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
}

// realNode dresses the i-th node of fixture.Cluster as a kubelet and a cloud
// provider would report it, so that a cache of whole Nodes costs what it
// costs in a real cluster: the images a node has pulled, its addresses,
// resources and system information make up most of its size. It is Ready
// from the start, as a kubelet registers it: kwok, which keeps its lease,
// then has no status to initialize, which on this machine takes minutes for
// thousands of Nodes.
func realNode(n *corev1.Node, i int, images []corev1.ContainerImage, now metav1.Time) *corev1.Node {
	n = n.DeepCopy()
	zone, instanceType := n.Labels[corev1.LabelTopologyZone], n.Labels[corev1.LabelInstanceTypeStable]
	for k, v := range map[string]string{
		corev1.LabelOSStable:                "linux",
		corev1.LabelArchStable:              "amd64",
		"beta.kubernetes.io/os":             "linux",
		"beta.kubernetes.io/arch":           "amd64",
		corev1.LabelInstanceType:            instanceType,
		corev1.LabelTopologyRegion:          "region-1",
		corev1.LabelFailureDomainBetaZone:   zone,
		corev1.LabelFailureDomainBetaRegion: "region-1",
	} {
		n.Labels[k] = v
	}
	instanceID := "i-" + digest(n.Name, "instance")[:17]
	n.Annotations = map[string]string{
		// kwok simulates the kubelet of Nodes with this annotation, as it
		// does for the local cluster's own.
		"kwok.x-k8s.io/node":                                     "fake",
		"node.alpha.kubernetes.io/ttl":                           "0",
		"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		"csi.volume.kubernetes.io/nodeid":                        fmt.Sprintf(`{"ebs.csi.aws.com":%q}`, instanceID),
	}
	// A /26 per node in 100.64.0.0/10 leaves room for 65,536 nodes; /24s
	// would run out at 16,384.
	podCIDR := fmt.Sprintf("100.%d.%d.%d/26", 64+(i>>10), (i>>2)&255, (i&3)*64)
	n.Spec.PodCIDR, n.Spec.PodCIDRs = podCIDR, []string{podCIDR}
	n.Spec.ProviderID = fmt.Sprintf("aws:///%s/%s", zone, instanceID)

	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	n.Status = corev1.NodeStatus{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32386252Ki"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("104845292Ki"),
			"hugepages-1Gi": resource.MustParse("0"), "hugepages-2Mi": resource.MustParse("0"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("7910m"), corev1.ResourceMemory: resource.MustParse("31369420Ki"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("95551679124"),
			"hugepages-1Gi": resource.MustParse("0"), "hugepages-2Mi": resource.MustParse("0"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip},
			{Type: corev1.NodeInternalDNS, Address: fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", i>>16&255, i>>8&255, i&255)},
			{Type: corev1.NodeHostName, Address: n.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               digest(n.Name, "machine")[:32],
			SystemUUID:              uuid(digest(n.Name, "system")),
			BootID:                  uuid(digest(n.Name, "boot")),
			KernelVersion:           "6.1.119-129.201.amzn2023.x86_64",
			OSImage:                 "Amazon Linux 2023.6.20241212",
			ContainerRuntimeVersion: "containerd://1.7.23",
			KubeletVersion:          "v1.37.2",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
		},
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", Message: "RouteController created a route"},
		},
		Images: images,
	}
	for i := range n.Status.Conditions {
		n.Status.Conditions[i].LastHeartbeatTime, n.Status.Conditions[i].LastTransitionTime = now, now
	}
	return n
}

// pulledImages are the images a busy worker node reports: the system
// daemons, a service mesh, monitoring and a few applications, each by tag and
// by digest.
func pulledImages() []corev1.ContainerImage {
	pulled := []struct {
		name string
		mb   int64
	}{
		{"registry.k8s.io/kube-proxy:v1.37.2", 31}, {"registry.k8s.io/pause:3.10", 1},
		{"registry.k8s.io/coredns/coredns:v1.12.1", 22}, {"registry.k8s.io/metrics-server/metrics-server:v0.8.1", 20},
		{"602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.19.2", 45},
		{"602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni-init:v1.19.2", 60},
		{"602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/aws-ebs-csi-driver:v1.37.0", 105},
		{"602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/aws-efs-csi-driver:v2.1.0", 98},
		{"public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.12.0", 9},
		{"public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe:v2.14.0", 8},
		{"cr.fluentbit.io/fluent/fluent-bit:3.2.2", 38}, {"quay.io/prometheus/node-exporter:v1.8.2", 11},
		{"docker.io/datadog/agent:7.59.0", 320}, {"quay.io/cilium/cilium:v1.16.5", 190},
		{"docker.io/istio/proxyv2:1.24.2", 96}, {"docker.io/istio/pilot:1.24.2", 72},
		{"registry.k8s.io/ingress-nginx/controller:v1.12.0", 105}, {"quay.io/jetstack/cert-manager-controller:v1.16.2", 19},
		{"docker.io/bitnami/redis:7.4.1", 40}, {"docker.io/library/postgres:17.2", 150},
		{"docker.io/library/nginx:1.27.3", 70}, {"ghcr.io/example/payments-api:2.14.3", 85},
		{"ghcr.io/example/checkout-web:5.2.0", 120}, {"ghcr.io/example/orders-worker:1.88.1", 64},
		{"docker.io/grafana/promtail:3.3.1", 75}, {"docker.io/otel/opentelemetry-collector-contrib:0.116.0", 95},
	}
	images := make([]corev1.ContainerImage, len(pulled))
	for i, p := range pulled {
		repository := p.name[:strings.LastIndex(p.name, ":")]
		images[i] = corev1.ContainerImage{
			Names:     []string{repository + "@sha256:" + digest(p.name), p.name},
			SizeBytes: p.mb << 20,
		}
	}
	return images
}

// digest returns a SHA-256 in hex: stable identifiers of the right shape.
func digest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])
}

// uuid formats the start of a hex digest as a UUID.
func uuid(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
