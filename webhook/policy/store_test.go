package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

func TestWatcherReloadsValidChangesAndKeepsTheLastGoodPolicy(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(doc string) {
		t.Helper()
		// Write then rename, as editors and the kubelet do.
		tmp := filepath.Join(dir, ".tmp")
		g.Expect(os.WriteFile(tmp, []byte(doc), 0o600)).To(Succeed())
		g.Expect(os.Rename(tmp, path)).To(Succeed())
	}
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	write(header)
	initial, err := policy.Load(path, rules.Builtin())
	g.Expect(err).NotTo(HaveOccurred())

	store := policy.NewStore(initial)
	var mu sync.Mutex
	var results []error
	w := &policy.Watcher{Path: path, Store: store, Catalog: rules.Builtin(), Log: logr.Discard(), Reloaded: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, err)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() { cancel(); g.Expect(<-done).To(Succeed()) })
	reloads := func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), results...) }

	// The watch starts asynchronously: keep writing until a reload is seen.
	g.Eventually(func() policy.Action {
		write(header + "rules:\n  targets-nodes: {action: deny}\n")
		return store.Get().Action(rules.TargetsNodes)
	}, 10*time.Second, 200*time.Millisecond).Should(Equal(policy.Deny), "a valid change should apply without restart")
	g.Expect(reloads()).To(ContainElement(BeNil()), "a successful reload should be reported")

	good := store.Get()
	write(header + "rules:\n  targets-nodes: {action: block}\n")
	g.Eventually(func() []error { return reloads() }, 10*time.Second).Should(ContainElement(MatchError(ContainSubstring(`rules.targets-nodes.action: Unsupported value: "block"`))),
		"an invalid change should be reported with its field path")
	g.Expect(store.Get()).To(BeIdenticalTo(good), "an invalid change must leave the last good policy in force")

	write(header + "rules:\n  targets-nodes: {action: true}\n")
	g.Eventually(func() []error { return reloads() }, 10*time.Second).Should(HaveLen(3), "a second invalid change should be reported too")
	write(header + "rules:\n  targets-nodes: {action: off}\n")
	g.Eventually(func() policy.Action { return store.Get().Action(rules.TargetsNodes) }, 10*time.Second).Should(Equal(policy.Off), "a valid change after an invalid one should apply")
}

func TestWatcherAppliesAChangeMadeBeforeItsWatchBegan(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	const header = "apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"
	g.Expect(os.WriteFile(path, []byte(header), 0o600)).To(Succeed())
	loaded, err := policy.Load(path, rules.Builtin())
	g.Expect(err).NotTo(HaveOccurred())
	// The manager starts the watcher a while after the process loaded the
	// file; a ConfigMap update in between makes no event for the watch.
	g.Expect(os.WriteFile(path, []byte(header+"rules:\n  targets-nodes: {action: deny}\n"), 0o600)).To(Succeed())

	store := policy.NewStore(loaded)
	reloaded := make(chan error, 1)
	w := &policy.Watcher{Path: path, Store: store, Catalog: rules.Builtin(), Log: logr.Discard(), Reloaded: func(err error) { reloaded <- err }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() { cancel(); g.Expect(<-done).To(Succeed()) })

	g.Eventually(reloaded, 10*time.Second).Should(Receive(BeNil()), "the watcher should load the file once its watch is set")
	g.Expect(store.Get().Action(rules.TargetsNodes)).To(Equal(policy.Deny))
}
