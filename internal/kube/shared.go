package kube

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ClientFunc builds the clientset for an APIConfig; tests pass one returning a fake.
type ClientFunc func(APIConfig) (kubernetes.Interface, error)

// Registry hands out informers shared by every component of the process that asks for the same
// watch, and stops each when the last of them releases it.
type Registry struct {
	newClient ClientFunc

	mu      sync.Mutex
	running map[watchKey]*shared
}

// Shared is the process's registry, the one package-level state in edgetel, and on purpose:
// the Collector builds each component from its own factory and gives them nothing in common, yet
// a collector with the kubeedge receiver and the edgenode processor must not hold and watch every
// Node of a 100,000-node fleet twice. Contrib's k8sattributes processor and k8sobjects receiver
// share informers the same way. Entries live only while acquired: every Start acquires, every
// Shutdown releases, and the last release stops the informer, so nothing outlives the pipelines.
var Shared = NewRegistry(NewClient)

// NewRegistry returns an empty registry that builds clients with newClient.
func NewRegistry(newClient ClientFunc) *Registry {
	return &Registry{newClient: newClient, running: map[watchKey]*shared{}}
}

// NodeWatch says which Nodes to watch. Two components share an informer when their NodeWatch
// values are equal.
type NodeWatch struct {
	API APIConfig
	// Selector is a label selector; empty watches every Node.
	Selector string
	// Resync is the informer's resync period; 0 disables resync.
	Resync time.Duration
}

// watchKey identifies one informer. Resource makes room for other kinds (Pods for logs) next to
// Nodes without a second registry.
type watchKey struct {
	resource string
	NodeWatch
}

// shared is one running informer and its reference count.
type shared struct {
	refs     int
	informer cache.SharedIndexInformer
	factory  informers.SharedInformerFactory
	stop     chan struct{}
}

// lease is one holder's reference to a shared informer. Release it exactly once.
type lease struct {
	reg  *Registry
	key  watchKey
	s    *shared
	once sync.Once
}

// acquire leases the informer for key, starting it with start if no one holds it yet.
func (r *Registry) acquire(key watchKey, start func(kubernetes.Interface) (*shared, error)) (*lease, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.running[key]
	if s == nil {
		client, err := r.newClient(key.API)
		if err != nil {
			return nil, fmt.Errorf("creating Kubernetes client: %w", err)
		}
		if s, err = start(client); err != nil {
			return nil, err
		}
		r.running[key] = s
	}
	s.refs++
	return &lease{reg: r, key: key, s: s}, nil
}

// startShared starts a factory whose informer keeps objects as transform slims them.
func startShared(factory informers.SharedInformerFactory, inf cache.SharedIndexInformer, transform cache.TransformFunc) (*shared, error) {
	if err := inf.SetTransform(transform); err != nil {
		return nil, fmt.Errorf("setting transform: %w", err)
	}
	s := &shared{informer: inf, factory: factory, stop: make(chan struct{})}
	factory.Start(s.stop)
	return s, nil
}

// Release gives the informer back; the last release stops it and waits for its goroutines.
func (l *lease) Release() {
	l.once.Do(func() {
		r := l.reg
		r.mu.Lock()
		defer r.mu.Unlock()
		l.s.refs--
		if l.s.refs > 0 {
			return
		}
		delete(r.running, l.key)
		close(l.s.stop)
		l.s.factory.Shutdown()
	})
}

// WaitForSync blocks until the first list is in or ctx ends, and says which.
func (l *lease) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), l.s.informer.HasSynced)
}

// Nodes is a shared Node informer, acquired from a Registry. Release it exactly once.
type Nodes struct{ *lease }

// AcquireNodes returns the informer for w, starting it if no one holds it yet.
func (r *Registry) AcquireNodes(w NodeWatch) (*Nodes, error) {
	if _, err := labels.Parse(w.Selector); err != nil {
		return nil, fmt.Errorf("node selector: %w", err)
	}
	l, err := r.acquire(watchKey{resource: "nodes", NodeWatch: w}, func(client kubernetes.Interface) (*shared, error) {
		factory := informers.NewSharedInformerFactoryWithOptions(client, w.Resync,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = w.Selector }))
		return startShared(factory, factory.Core().V1().Nodes().Informer(), slimNode)
	})
	if err != nil {
		return nil, err
	}
	return &Nodes{l}, nil
}

// List returns the current nodes sorted by name.
func (n *Nodes) List() []Node {
	objs := n.s.informer.GetStore().List()
	out := make([]Node, 0, len(objs))
	for _, o := range objs {
		if kn, ok := o.(*corev1.Node); ok {
			out = append(out, FromKube(kn))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NodeHandler receives changes. Either function may be nil.
type NodeHandler struct {
	Upsert func(Node)
	Delete func(name string)
}

// Subscription is one NodeHandler added to a shared informer.
type Subscription struct {
	informer cache.SharedIndexInformer
	reg      cache.ResourceEventHandlerRegistration
}

// WaitForSync blocks until the handler has been given every node of the first list, or ctx
// ends, and says which. The informer's own sync is not enough: its store fills before its
// handlers have run.
func (s *Subscription) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.reg.HasSynced)
}

// Remove stops calls to the handler; call it before releasing the Nodes.
func (s *Subscription) Remove() {
	_ = s.informer.RemoveEventHandler(s.reg)
}

// Handle calls h on every change, starting with an Upsert for each node already known.
func (n *Nodes) Handle(h NodeHandler) (*Subscription, error) {
	upsert := func(obj any) {
		if kn, ok := obj.(*corev1.Node); ok && h.Upsert != nil {
			h.Upsert(FromKube(kn))
		}
	}
	reg, err := n.s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    upsert,
		UpdateFunc: func(_, obj any) { upsert(obj) },
		DeleteFunc: func(obj any) {
			if h.Delete == nil {
				return
			}
			if name := deletedName(obj); name != "" {
				h.Delete(name)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding node event handler: %w", err)
	}
	return &Subscription{informer: n.s.informer, reg: reg}, nil
}

func deletedName(obj any) string {
	switch o := obj.(type) {
	case *corev1.Node:
		return o.Name
	case cache.DeletedFinalStateUnknown:
		if kn, ok := o.Obj.(*corev1.Node); ok {
			return kn.Name
		}
	}
	return ""
}
