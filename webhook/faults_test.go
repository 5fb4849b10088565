package webhook_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

var failOpen = regexp.MustCompile(`apiserver_admission_webhook_fail_open_count\{[^}]*name="mutate.daemonset-guard.io"[^}]*\} (\d+)`)

// TestKillingTheWebhookDuringABurstLosesNothing kills the webhook while
// clients create DaemonSets, then brings it back. The mutating webhook fails
// open (the API server counts it) and the validating one fails closed, so no
// DaemonSet is admitted unmutated while the webhook is down, nor in the
// moments it stops and starts, when one call can fail and the next succeed
// (this test found that window); after the restart everything resumes.
func TestKillingTheWebhookDuringABurstLosesNothing(t *testing.T) {
	wh := testenv.StartWebhook(t, "policy/testdata/example.yaml")
	ctx := context.Background()
	g := NewWithT(t)
	testenv.CreateReadyNodes(t, wh.Client, fixture.Node("ssd-1", []string{"disktype", "ssd"}), fixture.Node("hdd-1", []string{"disktype", "hdd"}))
	_, err := wh.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "burst"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	dsClient := wh.Client.AppsV1().DaemonSets("burst")
	// The informer has seen the nodes once a create needs no warning.
	g.Eventually(func() []string {
		_, _ = dsClient.Create(ctx, fixture.Written("probe", inNamespace("burst")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return wh.Warnings.Take()
	}, 10*time.Second, 100*time.Millisecond).Should(BeEmpty())

	var created, refused, halfMutated atomic.Int64
	var mu sync.Mutex
	var unexpected []string
	stop := make(chan struct{})
	var next atomic.Int64
	var workers sync.WaitGroup
	for range 4 {
		workers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ds := fixture.Written("burst-"+strconv.FormatInt(next.Add(1), 10), inNamespace("burst"))
				_, err := dsClient.Create(ctx, ds, metav1.CreateOptions{})
				switch {
				case err == nil:
					created.Add(1)
				case strings.Contains(err.Error(), `failed calling webhook "validate.daemonset-guard.io"`):
					refused.Add(1)
				case strings.Contains(err.Error(), "the mutating webhook has not applied this rule"):
					// The window while the server stops or starts: the
					// mutating call failed open, the validating one got
					// through and refused the half-mutated object.
					halfMutated.Add(1)
				default:
					mu.Lock()
					unexpected = append(unexpected, err.Error())
					mu.Unlock()
				}
			}
		})
	}

	g.Eventually(created.Load, 30*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 20), "creates go through while the webhook runs")
	wh.Stop()
	downAt := created.Load()
	g.Eventually(refused.Load, 30*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 20), "the validating webhook fails closed while down")
	g.Expect(created.Load()).To(BeNumerically("<=", downAt+4), "at most the requests in flight at the kill got through")
	wh.Start()
	upAt := created.Load()
	g.Eventually(created.Load, 30*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", upAt+20), "creates resume after the restart")
	close(stop)
	workers.Wait()
	g.Expect(unexpected).To(BeEmpty(), "every failure is the webhook's failure policy")

	list, err := dsClient.List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Items).To(HaveLen(int(created.Load())), "every create that succeeded is stored")
	for _, ds := range list.Items {
		g.Expect(ds.Annotations).To(HaveKeyWithValue("daemonset-guard.io/mutated", "default-tolerations,rolling-update-defaults"),
			"DaemonSet %s was admitted without the mutation", ds.Name)
		g.Expect(ds.Spec.Template.Spec.Tolerations).To(ContainElement(HaveField("Key", "node-role.kubernetes.io/control-plane")))
	}

	metrics, err := wh.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	m := failOpen.FindSubmatch(metrics)
	g.Expect(m).NotTo(BeNil(), "the API server counts the mutating webhook's failures to open")
	count, _ := strconv.Atoi(string(m[1]))
	g.Expect(count).To(BeNumerically(">", 0))
	t.Logf("%d created, %d refused while down, %d refused half-mutated, %d mutating calls failed open", created.Load(), refused.Load(), halfMutated.Load(), count)
}

func inNamespace(ns string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Namespace = ns }
}
