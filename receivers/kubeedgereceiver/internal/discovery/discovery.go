// Package discovery finds the edge nodes to scrape: from Kubernetes Node objects, a static list,
// or a fleet file. Every source reports complete snapshots; the receiver diffs them.
package discovery

import (
	"context"
	"hash/fnv"
	"sort"

	"github.com/edgetel/edgetel/internal/fleet"
)

// Node is a discovered edge node.
type Node struct {
	fleet.Node
	// Ready is the node's Ready condition (true for sources without one).
	Ready bool
}

// Discoverer reports snapshots of the fleet until its context ends.
type Discoverer interface {
	// Run calls update with the complete current set of nodes whenever it may have changed. It
	// returns when ctx is done, or early with an error when it cannot start.
	Run(ctx context.Context, update func([]Node)) error
}

// Shard says whether a node belongs to shard index of count. The hash is FNV-1a of the node
// name, so every replica agrees without talking to the others.
func Shard(name string, index, count int) bool {
	if count <= 1 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()%uint64(count) == uint64(index)
}

func sortNodes(nodes []Node) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
}
