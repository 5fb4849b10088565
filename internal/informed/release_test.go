package informed

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestReleaseAfterSyncWaitsForEveryViewAndStopsWithItsContext(t *testing.T) {
	t.Run("releases once every view has synced", func(t *testing.T) {
		g := NewWithT(t)
		var namespaces atomic.Bool
		done := make(chan struct{})
		go func() {
			ReleaseAfterSync(context.Background(), func() bool { return true }, namespaces.Load)
			close(done)
		}()
		g.Consistently(done, 300*time.Millisecond, 50*time.Millisecond).ShouldNot(BeClosed(), "a view has not synced")
		namespaces.Store(true)
		g.Eventually(done, 5*time.Second, 50*time.Millisecond).Should(BeClosed())
	})
	t.Run("returns when its context is done first", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			ReleaseAfterSync(ctx, func() bool { return false })
			close(done)
		}()
		cancel()
		NewWithT(t).Eventually(done, 5*time.Second, 50*time.Millisecond).Should(BeClosed())
	})
}
