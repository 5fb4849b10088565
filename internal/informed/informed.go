// Package informed holds what the webhook's views of the cluster (nodes,
// PriorityClasses, namespaces) share as event handlers of an informer:
// attaching to it, reporting whether its initial list has arrived,
// unwrapping the tombstones of deletes it missed, and, for the simple ones,
// keeping a value per object name.
package informed

import (
	"iter"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// ByName is a view of one kind of object, by name, that an informer keeps
// current: of each object it holds what view returns. It is safe for
// concurrent use and implements cache.ResourceEventHandler.
type ByName[T metav1.Object, V any] struct {
	Sync
	view  func(T) V
	mu    sync.RWMutex
	items map[string]V
}

// NewByName returns an empty view that reports itself synced: add objects
// with OnAdd, or Attach it to an informer to have it follow the cluster.
func NewByName[T metav1.Object, V any](view func(T) V) *ByName[T, V] {
	return &ByName[T, V]{view: view, items: map[string]V{}}
}

// Attach makes the informer keep the view current. Until the informer has
// delivered its initial list, Synced reports false.
func (b *ByName[T, V]) Attach(informer Informer) error { return b.Track(informer, b) }

// Get returns what the view holds of the named object.
func (b *ByName[T, V]) Get(name string) (V, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.items[name]
	return v, ok
}

// All yields what the view holds of every object, holding the view's read
// lock while it does.
func (b *ByName[T, V]) All() iter.Seq[V] {
	return func(yield func(V) bool) {
		b.mu.RLock()
		defer b.mu.RUnlock()
		for _, v := range b.items {
			if !yield(v) {
				return
			}
		}
	}
}

// OnAdd implements cache.ResourceEventHandler.
func (b *ByName[T, V]) OnAdd(obj any, _ bool) {
	if o, ok := obj.(T); ok {
		b.mu.Lock()
		b.items[o.GetName()] = b.view(o)
		b.mu.Unlock()
	}
}

// OnUpdate implements cache.ResourceEventHandler.
func (b *ByName[T, V]) OnUpdate(_, obj any) { b.OnAdd(obj, false) }

// OnDelete implements cache.ResourceEventHandler.
func (b *ByName[T, V]) OnDelete(obj any) {
	if o, ok := Deleted(obj).(T); ok {
		b.mu.Lock()
		delete(b.items, o.GetName())
		b.mu.Unlock()
	}
}
