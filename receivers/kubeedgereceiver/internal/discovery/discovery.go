// Package discovery finds the edge nodes to scrape: from Kubernetes Node objects, a static list,
// or a node file. Every source reports complete snapshots; the receiver diffs them.
package discovery

import (
	"context"
	"hash/fnv"
	"sort"

	"github.com/edgetel/edgetel/internal/kube"
)

// Target is an edge node to scrape.
type Target struct {
	kube.Node
	// Direct is host:port where this node's kubelet answers directly. Only the deprecated
	// `direct` field of a node file sets it (edgesim's per-node direct mode); empty otherwise.
	Direct string
	// Pods are the node's pods, for the logs signal: a node file's "pods" lists them, or the
	// Pod informer of discovery mode kubernetes.
	Pods []kube.Pod
}

// Discoverer reports snapshots of the fleet until its context ends.
type Discoverer interface {
	// Run calls update with the complete current set of targets whenever it may have changed.
	// It returns when ctx is done, or early with an error when it cannot start.
	Run(ctx context.Context, update func([]Target)) error
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

func sortTargets(targets []Target) {
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })
}
