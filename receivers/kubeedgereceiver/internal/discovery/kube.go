package discovery

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/edgetel/edgetel/internal/fleet"
)

// DefaultEdgeSelector selects KubeEdge edge nodes: edged registers them with the edge role label
// and an empty value, which is also what cloudcore's IsEdgeNode requires.
const DefaultEdgeSelector = fleet.LabelEdgeRole + "="

// Kubernetes watches Node objects matching a label selector.
type Kubernetes struct {
	Client   kubernetes.Interface
	Selector string
	Resync   time.Duration
	// Settle is how long to wait after an event for more before reporting, so a burst of node
	// updates costs one snapshot.
	Settle time.Duration
}

// Run starts an informer on Nodes and reports a snapshot after the initial list and after
// every change.
func (k Kubernetes) Run(ctx context.Context, update func([]Node)) error {
	if _, err := labels.Parse(k.Selector); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.Client, k.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = k.Selector }))
	informer := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(_, _ any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return err
	}
	lister := informer.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("node informer did not sync")
	}
	for {
		list, err := lister.List(labels.Everything())
		if err != nil {
			return err
		}
		nodes := make([]Node, 0, len(list))
		for _, n := range list {
			nodes = append(nodes, fromKube(n))
		}
		sortNodes(nodes)
		update(nodes)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		if k.Settle > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(k.Settle):
			}
		}
	}
}

func fromKube(n *corev1.Node) Node {
	out := Node{Node: fleet.Node{
		Name:   n.Name,
		Port:   int(n.Status.DaemonEndpoints.KubeletEndpoint.Port),
		Labels: n.Labels,
	}}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out.IP = a.Address
			break
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	return out
}
