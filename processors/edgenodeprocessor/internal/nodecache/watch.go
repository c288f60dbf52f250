package nodecache

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watcher runs a Node informer that keeps a Cache current.
type Watcher struct {
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	stop     chan struct{}
}

// Watch starts an informer over the nodes matching selector (a label selector; empty for all).
func Watch(client kubernetes.Interface, selector string, resync time.Duration, c *Cache) (*Watcher, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := factory.Core().V1().Nodes().Informer()
	// At 100,000 edge nodes the informer's store matters: keep only what Cache.build reads.
	if err := inf.SetTransform(slim); err != nil {
		return nil, fmt.Errorf("setting node transform: %w", err)
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { upsert(c, obj) },
		UpdateFunc: func(_, obj any) { upsert(c, obj) },
		DeleteFunc: func(obj any) { remove(c, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("adding node event handler: %w", err)
	}
	w := &Watcher{factory: factory, informer: inf, stop: make(chan struct{})}
	factory.Start(w.stop)
	return w, nil
}

// WaitForSync blocks until the first list is in the cache or ctx ends.
func (w *Watcher) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced)
}

// Stop ends the informer and waits for its goroutines.
func (w *Watcher) Stop() {
	close(w.stop)
	w.factory.Shutdown()
}

func upsert(c *Cache, obj any) {
	if n, ok := obj.(*corev1.Node); ok {
		c.Upsert(n)
	}
}

func remove(c *Cache, obj any) {
	switch o := obj.(type) {
	case *corev1.Node:
		c.Delete(o.Name)
	case cache.DeletedFinalStateUnknown:
		if n, ok := o.Obj.(*corev1.Node); ok {
			c.Delete(n.Name)
		}
	}
}

// slim drops the parts of a Node the cache never reads (managed fields, images, capacity, ...).
func slim(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          n.Labels,
			Annotations:     n.Annotations,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: readyOnly(n.Status.Conditions)},
	}, nil
}

func readyOnly(conds []corev1.NodeCondition) []corev1.NodeCondition {
	for _, c := range conds {
		if c.Type == corev1.NodeReady {
			return []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return nil
}
