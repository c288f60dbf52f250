// Package discovery finds the edge nodes to scrape: from Kubernetes Node objects, a static list,
// or a node file. Every source reports complete snapshots; the receiver diffs them.
package discovery

import (
	"context"
	"sort"

	"github.com/cespare/xxhash/v2"

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

// Shard says whether a node belongs to shard index of count. Every replica computes it alone
// from the node name, so they agree without talking to each other. The assignment is rendezvous
// (highest random weight) hashing: the node goes to the shard whose score for it is highest, so
// going from N to N+1 shards moves only the nodes the new shard wins, about 1/(N+1) of them (a
// hash modulo N moved about N/(N+1)). Cost: count scores per node and snapshot.
func Shard(name string, index, count int) bool {
	if count <= 1 {
		return true
	}
	return ShardOf(name, count) == index
}

// ShardOf is the shard, in [0, count), that owns a node.
func ShardOf(name string, count int) int {
	h := xxhash.Sum64String(name)
	best, owner := uint64(0), 0
	for i := range count {
		if s := mix64(h + uint64(i+1)*0x9e3779b97f4a7c15); i == 0 || s > best {
			best, owner = s, i
		}
	}
	return owner
}

// mix64 is splitmix64's finalizer: one node's scores for different shards must look independent.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func sortTargets(targets []Target) {
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })
}
