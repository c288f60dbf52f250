package discovery

import (
	"context"
	"errors"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
)

// Kubernetes follows a shared Node informer and, for the logs signal, a shared Pod informer.
type Kubernetes struct {
	Nodes *kube.Nodes
	// Pods, when set, gives each target its pods (by spec.nodeName), and a pod change is a new
	// snapshot.
	Pods *kube.Pods
	// Settle is how long to wait after an event for more before reporting, so a burst of node
	// updates costs one snapshot.
	Settle time.Duration
}

// Run reports a snapshot after the initial list and after every change.
func (k Kubernetes) Run(ctx context.Context, update func([]Target)) error {
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	sub, err := k.Nodes.Handle(kube.NodeHandler{
		Upsert: func(kube.Node) { notify() },
		Delete: func(string) { notify() },
	})
	if err != nil {
		return err
	}
	defer sub.Remove()
	if !sub.WaitForSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("node informer did not sync")
	}
	if k.Pods != nil {
		podSub, err := k.Pods.OnChange(notify)
		if err != nil {
			return err
		}
		defer podSub.Remove()
		if !podSub.WaitForSync(ctx) {
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("pod informer did not sync")
		}
	}
	for {
		update(k.snapshot())
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

func (k Kubernetes) snapshot() []Target {
	nodes := k.Nodes.List()
	targets := make([]Target, len(nodes))
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		targets[i] = Target{Node: n}
		index[n.Name] = i
	}
	if k.Pods == nil {
		return targets
	}
	for _, p := range k.Pods.List() {
		if i, ok := index[p.Node]; ok {
			targets[i].Pods = append(targets[i].Pods, p)
		}
	}
	return targets
}
