package discovery

import (
	"context"
	"errors"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
)

// Kubernetes follows a shared Node informer.
type Kubernetes struct {
	Nodes *kube.Nodes
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
	for {
		nodes := k.Nodes.List()
		targets := make([]Target, len(nodes))
		for i, n := range nodes {
			targets[i] = Target{Node: n}
		}
		update(targets)
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
