// Package namedwatch tells a loop, within seconds, that one named object
// changed or went away, so that what repairs it need not poll. It watches
// with a field selector on the name, which RBAC lets a role restricted to
// that name (resourceNames) list and watch.
package namedwatch

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Changes watches the object named name of the resource (namespace empty for
// a cluster-scoped one) through the REST client of its API group, until ctx
// is done. The channel receives after every add, update and delete; a
// receiver that falls behind misses nothing, since one signal stands for all
// the changes before it.
func Changes(ctx context.Context, client rest.Interface, resource, namespace, name string, object runtime.Object) <-chan struct{} {
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	lw := cache.NewFilteredListWatchFromClient(client, resource, namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	})
	informer := cache.NewSharedIndexInformer(lw, object, 0, cache.Indexers{})
	// The handler cannot fail; the registration it returns is not needed.
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	})
	go informer.Run(ctx.Done())
	return changed
}
