// Package warnings keeps the warnings an API server relays to a client,
// such as those of admission webhooks, for the tests and measurement
// programs that read them.
package warnings

import "sync"

// Recorder is a rest.WarningHandler that keeps every warning until Take.
type Recorder struct {
	mu   sync.Mutex
	seen []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (r *Recorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, text)
}

// Take returns the warnings received since the last call.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}
