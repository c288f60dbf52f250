package discovery

import (
	"context"

	"github.com/edgetel/edgetel/internal/kube"
)

// Static is a fixed list of nodes; they count as Ready.
type Static struct {
	Nodes []kube.Node
}

// Run reports the list once and waits for ctx.
func (s Static) Run(ctx context.Context, update func([]Target)) error {
	targets := make([]Target, len(s.Nodes))
	for i, n := range s.Nodes {
		n.Ready = kube.ReadyTrue
		targets[i] = Target{Node: n}
	}
	sortTargets(targets)
	update(targets)
	<-ctx.Done()
	return nil
}
