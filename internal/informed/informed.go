// Package informed holds what the webhook's views of the cluster (nodes,
// PriorityClasses, namespaces) share as event handlers of an informer:
// attaching to it, reporting whether its initial list has arrived, and
// unwrapping the tombstones of deletes it missed.
package informed

import (
	"sync"

	"k8s.io/client-go/tools/cache"
)

// Informer is the part of an informer the views need; client-go's and
// controller-runtime's informers both have it.
type Informer interface {
	AddEventHandler(handler cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error)
}

// Sync reports whether a view holds the cluster's full list. Its zero value
// reports synced: a view built from a list of objects is complete.
type Sync struct {
	mu     sync.RWMutex
	synced func() bool
}

// Track registers handler with the informer; until the informer has
// delivered its initial list to it, Synced reports false.
func (s *Sync) Track(informer Informer, handler cache.ResourceEventHandler) error {
	reg, err := informer.AddEventHandler(handler)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.synced = reg.HasSynced
	s.mu.Unlock()
	return nil
}

// Synced reports whether the view holds the cluster's full list.
func (s *Sync) Synced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synced == nil || s.synced()
}

// Deleted returns the object of a delete event, unwrapping the tombstone
// an informer delivers for a delete it missed.
func Deleted(obj any) any {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tombstone.Obj
	}
	return obj
}
