package webhook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// policyVariant is a policy whose toleration and maxUnavailable go together,
// so that a decision mixing two policies shows.
func policyVariant(key, share string) string {
	return "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules:\n  default-tolerations:\n    tolerations: [{key: " + key +
		", operator: Exists, effect: NoSchedule}]\n  rolling-update-defaults: {maxUnavailable: \"" + share + "\"}\n"
}

// TestPolicyReloadUnderLoadNeverMixesPolicies rewrites the policy file, with
// valid and invalid versions, while clients keep asking the mutating webhook:
// every answer is one policy's whole answer, and an invalid file changes
// nothing.
func TestPolicyReloadUnderLoadNeverMixesPolicies(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(doc string) {
		tmp := filepath.Join(dir, ".policy.tmp")
		g.Expect(os.WriteFile(tmp, []byte(doc), 0o600)).To(Succeed())
		g.Expect(os.Rename(tmp, path)).To(Succeed())
	}
	a, b := policyVariant("pool-a", "10%"), policyVariant("pool-b", "20%")
	write(a)
	initial, err := policy.Load(path, rules.Builtin())
	g.Expect(err).NotTo(HaveOccurred())
	store := policy.NewStore(initial)
	metrics, err := NewMetrics(prometheus.NewRegistry(), inventory.New(), rules.Builtin().Names())
	g.Expect(err).NotTo(HaveOccurred())
	var failedReloads atomic.Int64
	watcher := &policy.Watcher{Path: path, Store: store, Catalog: rules.Builtin(), Log: logr.Discard(), Reloaded: func(err error) {
		metrics.PolicyReloaded(err)
		if err != nil {
			failedReloads.Add(1)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = watcher.Start(ctx) }()

	m, v := newHandlers(handler{rules: rules.Builtin(), policy: store, nodes: inventory.New(cluster()...), metrics: metrics}, logr.Discard())
	mutate := routes(m, v, DefaultRequestTimeout)[MutatePath]
	body := reviewBody("CREATE", fixture.DaemonSet("fluentd"), nil, "")

	seen := map[string]int{}
	var mu sync.Mutex
	var mixed []string
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := send(mutate, body, "application/json")
				if err != nil {
					mu.Lock()
					mixed = append(mixed, err.Error())
					mu.Unlock()
					continue
				}
				patch := string(resp.Patch)
				aWhole := strings.Contains(patch, "pool-a") && strings.Contains(patch, `"10%"`) && !strings.Contains(patch, "pool-b")
				bWhole := strings.Contains(patch, "pool-b") && strings.Contains(patch, `"20%"`) && !strings.Contains(patch, "pool-a")
				mu.Lock()
				switch {
				case aWhole:
					seen["a"]++
				case bWhole:
					seen["b"]++
				default:
					mixed = append(mixed, patch)
				}
				mu.Unlock()
			}
		})
	}
	answered := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[name]
	}
	// Each step waits for the watcher instead of sleeping: a loaded machine
	// may take longer than any sleep to notice a write. The file is written
	// again while waiting, in case the watcher was not yet watching.
	invalid := "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {rolling-update-defaults: {maxUnavailable: \"0%\"}}\n"
	for _, step := range []struct{ name, doc string }{{"b", b}, {"a", a}, {"invalid", invalid}, {"b", b}, {"invalid", invalid}, {"a", a}} {
		if step.name == "invalid" {
			inForce, refused := store.Get(), failedReloads.Load()
			g.Eventually(func() int64 { write(step.doc); return failedReloads.Load() }, 10*time.Second, 250*time.Millisecond).
				Should(BeNumerically(">", refused), "the watcher refuses the invalid file")
			g.Expect(store.Get()).To(BeIdenticalTo(inForce), "an invalid file leaves the policy in force")
			continue
		}
		key := "pool-" + step.name
		g.Eventually(func() string {
			write(step.doc)
			return policy.OptionsOf[*rules.DefaultTolerationsOptions](store.Get(), rules.DefaultTolerations).Tolerations[0].Key
		}, 10*time.Second, 250*time.Millisecond).
			Should(Equal(key), "the watcher reloads policy %s", step.name)
		before := answered(step.name)
		g.Eventually(func() int { return answered(step.name) }, 10*time.Second, 10*time.Millisecond).
			Should(BeNumerically(">", before), "clients are answered under policy %s", step.name)
	}
	close(stop)
	clients.Wait()
	g.Expect(mixed).To(BeEmpty(), "no answer mixes two policies")
	g.Expect(testutil.ToFloat64(metrics.reloads.WithLabelValues("failed"))).To(BeEquivalentTo(failedReloads.Load()), "failed reloads are counted")
	g.Expect(testutil.ToFloat64(metrics.reloads.WithLabelValues("ok"))).To(BeNumerically(">", 0), "good reloads are counted")
	t.Logf("answers under policy a: %d, under policy b: %d; %d invalid reloads refused", seen["a"], seen["b"], failedReloads.Load())
}
