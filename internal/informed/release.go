package informed

import (
	"context"
	"runtime/debug"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// ReleaseAfterSync waits until every view has synced, then hands back to the
// operating system the memory their informers' initial lists left behind:
// each object arrives whole and is stripped to what the view keeps, and
// without this the runtime returns the freed pages over many minutes,
// holding the process near its start-up peak. It returns early when ctx is
// done.
func ReleaseAfterSync(ctx context.Context, synced ...func() bool) {
	all := func(context.Context) (bool, error) {
		return !slices.ContainsFunc(synced, func(s func() bool) bool { return !s() }), nil
	}
	if wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, all) == nil {
		debug.FreeOSMemory()
	}
}
