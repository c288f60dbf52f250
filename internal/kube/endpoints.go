package kube

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ServiceWatch names a Service whose ready endpoints are followed, through its EndpointSlices.
type ServiceWatch struct {
	API       APIConfig
	Namespace string
	Name      string
}

// ServiceEndpoints is a shared EndpointSlice informer for one Service. Release it exactly once.
type ServiceEndpoints struct{ *lease }

// AcquireServiceEndpoints returns the informer for w, starting it if no one holds it yet.
func (r *Registry) AcquireServiceEndpoints(w ServiceWatch) (*ServiceEndpoints, error) {
	if w.Namespace == "" || w.Name == "" {
		return nil, fmt.Errorf("service %s/%s: namespace and name must be set", w.Namespace, w.Name)
	}
	key := watchKey{resource: "endpointslices/" + w.Namespace + "/" + w.Name, NodeWatch: NodeWatch{API: w.API}}
	l, err := r.acquire(key, func(client kubernetes.Interface) (*shared, error) {
		factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(w.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = discoveryv1.LabelServiceName + "=" + w.Name
			}))
		return startShared(factory, factory.Discovery().V1().EndpointSlices().Informer(), nil)
	})
	if err != nil {
		return nil, err
	}
	return &ServiceEndpoints{l}, nil
}

// Addresses lists host:port of every ready endpoint on the Service's port named port (the only
// port when port is empty), sorted, each once.
func (s *ServiceEndpoints) Addresses(port string) []string {
	seen := map[string]bool{}
	for _, o := range s.s.informer.GetStore().List() {
		es, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		p, ok := slicePort(es, port)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				seen[net.JoinHostPort(a, strconv.Itoa(int(p)))] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func slicePort(es *discoveryv1.EndpointSlice, name string) (int32, bool) {
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		if p.Name != nil && *p.Name == name || name == "" && len(es.Ports) == 1 {
			return *p.Port, true
		}
	}
	return 0, false
}

// OnChange calls f after every change to the Service's endpoints, and once for each slice
// already known.
func (s *ServiceEndpoints) OnChange(f func()) (*Subscription, error) {
	reg, err := s.s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f() },
		UpdateFunc: func(_, _ any) { f() },
		DeleteFunc: func(any) { f() },
	})
	if err != nil {
		return nil, fmt.Errorf("adding endpointslice event handler: %w", err)
	}
	return &Subscription{informer: s.s.informer, reg: reg}, nil
}
