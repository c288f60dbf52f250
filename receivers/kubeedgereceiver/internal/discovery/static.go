package discovery

import (
	"context"

	"github.com/edgetel/edgetel/internal/fleet"
)

// Static is a fixed list of nodes.
type Static struct {
	Nodes []fleet.Node
}

// Run reports the list once and waits for ctx.
func (s Static) Run(ctx context.Context, update func([]Node)) error {
	nodes := make([]Node, len(s.Nodes))
	for i, n := range s.Nodes {
		nodes[i] = Node{Node: n, Ready: true}
	}
	sortNodes(nodes)
	update(nodes)
	<-ctx.Done()
	return nil
}
