package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// Store holds the policy in force. Requests take one snapshot with Get and use
// it throughout, so a reload never mixes two policies in one decision.
type Store struct {
	current atomic.Pointer[Policy]
}

// NewStore returns a store holding p.
func NewStore(p *Policy) *Store {
	s := &Store{}
	s.current.Store(p)
	return s
}

// Get returns the policy in force. Callers must not modify it.
func (s *Store) Get() *Policy { return s.current.Load() }

// Set replaces the policy in force.
func (s *Store) Set(p *Policy) { s.current.Store(p) }

// Watcher reloads a policy file into a Store whenever the file changes. An
// invalid file is reported and leaves the last good policy in force.
type Watcher struct {
	Path  string
	Store *Store
	// Catalog is the rules the file may configure.
	Catalog Catalog
	// Reloaded is called after each reload attempt with its error, if any.
	Reloaded func(error)
	Log      logr.Logger
}

// debounce gathers the burst of events of one edit (a ConfigMap update swaps
// a symlink and removes a directory) into a single reload.
const debounce = 100 * time.Millisecond

// Start watches the file's directory, not the file: editors and the kubelet
// replace files by rename, which ends a watch on the file itself. It returns
// when ctx is done.
func (w *Watcher) Start(ctx context.Context) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching policy file: %w", err)
	}
	defer fsw.Close()
	if err := fsw.Add(filepath.Dir(w.Path)); err != nil {
		return fmt.Errorf("watching policy file: %w", err)
	}
	w.Log.V(1).Info("watching the policy file", "path", w.Path)
	// The file was loaded when the process started, before this watch: an
	// edit in between made no event that the watch could see.
	w.reload()
	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-fsw.Errors:
			w.Log.Error(err, "policy file watch error")
		case event := <-fsw.Events:
			w.Log.V(1).Info("policy directory changed", "event", event.String())
			timer.Reset(debounce)
		case <-timer.C:
			w.reload()
		}
	}
}

func (w *Watcher) reload() {
	p, err := Load(w.Path, w.Catalog)
	if err == nil && reflect.DeepEqual(p, w.Store.Get()) {
		// Another file in the directory changed, or an edit left the content as it was.
		return
	}
	if err != nil {
		w.Log.Error(err, "policy reload failed; the previous policy stays in force")
	} else {
		w.Store.Set(p)
		w.Log.Info("policy reloaded", "path", w.Path)
	}
	if w.Reloaded != nil {
		w.Reloaded(err)
	}
}
