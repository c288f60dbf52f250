package kube

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// PodWatch says which Pods to watch: those bound to a node, with a label selector, in one
// namespace or every one. Two components share an informer when their PodWatch values are equal.
type PodWatch struct {
	API APIConfig
	// Namespace is the one namespace watched; empty watches every namespace (and needs the
	// right to list pods cluster-wide).
	Namespace string
	Selector  string
	Resync    time.Duration
}

// Pod is what the logs signal needs of a Pod, from the Pod informer or a node file (whose
// pods sit under their node, so Node is not in the file).
type Pod struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Node       string            `json:"-"` // spec.nodeName
	Labels     map[string]string `json:"labels,omitempty"`
	Containers []string          `json:"containers"`
}

// Pods is a shared Pod informer, acquired from a Registry. Release it exactly once.
type Pods struct{ *lease }

// AcquirePods returns the informer for w, starting it if no one holds it yet.
func (r *Registry) AcquirePods(w PodWatch) (*Pods, error) {
	if _, err := labels.Parse(w.Selector); err != nil {
		return nil, fmt.Errorf("pod selector: %w", err)
	}
	key := watchKey{resource: "pods/" + w.Namespace, NodeWatch: NodeWatch{API: w.API, Selector: w.Selector, Resync: w.Resync}}
	l, err := r.acquire(key, func(client kubernetes.Interface) (*shared, error) {
		opts := []informers.SharedInformerOption{informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = w.Selector
			o.FieldSelector = "spec.nodeName!=" // bound pods only: the node is where the logs are
		})}
		if w.Namespace != "" {
			opts = append(opts, informers.WithNamespace(w.Namespace))
		}
		factory := informers.NewSharedInformerFactoryWithOptions(client, w.Resync, opts...)
		return startShared(factory, factory.Core().V1().Pods().Informer(), slimPod)
	})
	if err != nil {
		return nil, err
	}
	return &Pods{l}, nil
}

// slimPod keeps what Pod needs: a pod's status and most of its spec are large and change often.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	containers := make([]corev1.Container, len(p.Spec.Containers))
	for i, c := range p.Spec.Containers {
		containers[i] = corev1.Container{Name: c.Name}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID,
			ResourceVersion: p.ResourceVersion, Labels: p.Labels},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName, Containers: containers},
	}, nil
}

// List returns the current pods sorted by namespace and name.
func (p *Pods) List() []Pod {
	objs := p.s.informer.GetStore().List()
	out := make([]Pod, 0, len(objs))
	for _, o := range objs {
		kp, ok := o.(*corev1.Pod)
		if !ok || kp.Spec.NodeName == "" {
			continue
		}
		pod := Pod{Namespace: kp.Namespace, Name: kp.Name, Node: kp.Spec.NodeName, Labels: kp.Labels}
		for _, c := range kp.Spec.Containers {
			pod.Containers = append(pod.Containers, c.Name)
		}
		out = append(out, pod)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// OnChange calls fn after every added, changed or deleted pod.
func (p *Pods) OnChange(fn func()) (*Subscription, error) {
	reg, err := p.s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { fn() },
		UpdateFunc: func(any, any) { fn() },
		DeleteFunc: func(any) { fn() },
	})
	if err != nil {
		return nil, fmt.Errorf("adding pod event handler: %w", err)
	}
	return &Subscription{informer: p.s.informer, reg: reg}, nil
}
