package charttest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// collector.replicasPerShard: shards × replicas pods; the receiver takes the shard from the
// ordinal; a PodDisruptionBudget lets one pod go at a time and the pods spread over nodes. With
// one replica per shard none of that is rendered.
func TestReplicasPerShard(t *testing.T) {
	objs := rendered(t, "--set", "collector.shards=2", "--set", "collector.replicasPerShard=2")
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	require.NotNil(t, sts.Spec.Replicas)
	assert.EqualValues(t, 4, *sts.Spec.Replicas)
	aff := sts.Spec.Template.Spec.Affinity
	require.NotNil(t, aff, "replicas of a shard spread over nodes")
	require.NotNil(t, aff.PodAntiAffinity)
	assert.Equal(t, "kubernetes.io/hostname", aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey)
	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "edgetel-collector")
	assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())

	assert.Equal(t, float64(2), dig(t, collectorConfig(t, objs), "receivers", "kubeedge", "shard", "replicas_per_shard"))

	one := rendered(t, "--set", "collector.shards=2")
	sts = find[*appsv1.StatefulSet](t, one, "StatefulSet", "edgetel-collector")
	assert.EqualValues(t, 2, *sts.Spec.Replicas)
	assert.Nil(t, sts.Spec.Template.Spec.Affinity)
}

// argValues lists the values of every occurrence of a repeated flag.
func argValues(c corev1.Container, name string) []string {
	var out []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// Every collector's blocks carry replica=<ordinal> (never shard, which named the same ordinal
// before), whatever the shard and replica counts, and every reader and the compactor deduplicate
// on replica and shard, so that a node's series is one series across replicas, restarts and a
// reshard, in buckets written before too. The compactor merges with Thanos' penalty algorithm
// when more than one collector writes; a single collector keeps the 1:1 merger. Remote write
// carries the replica label whenever more than one collector runs.
func TestEveryReaderDeduplicatesTheCollectors(t *testing.T) {
	const rw = "https://receive.example/api/v1/receive"
	for _, tc := range []struct {
		name             string
		shards, perShard int
	}{{"one collector", 1, 1}, {"two shards", 2, 1}, {"two replicas", 1, 2}, {"2 × 2", 2, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			objs := rendered(t, "--set", fmt.Sprintf("collector.shards=%d", tc.shards), "--set", fmt.Sprintf("collector.replicasPerShard=%d", tc.perShard),
				"--set", "thanos.enabled=true", "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=b",
				"--set", "collector.remoteWrite.enabled=true", "--set", "collector.remoteWrite.endpoint="+rw)
			cfg := collectorConfig(t, objs)
			assert.Equal(t, map[string]any{"cluster": "edgetel", "replica": "${env:SHARD_INDEX}"},
				dig(t, cfg, "exporters", "objstore", "external_labels"), "blocks: the writer's ordinal as replica")
			several := tc.shards*tc.perShard > 1
			if several {
				assert.Equal(t, map[string]any{"cluster": "edgetel", "replica": "${env:SHARD_INDEX}"},
					dig(t, cfg, "exporters", "edgeremotewrite", "external_labels"), "remote write: two collectors can send one series")
			} else {
				assert.Equal(t, map[string]any{"cluster": "edgetel"},
					dig(t, cfg, "exporters", "edgeremotewrite", "external_labels"), "remote write: one collector's series as they were")
			}
			dedup := []string{"replica", "shard"}
			_, q := queryContainer(t, objs)
			assert.Equal(t, dedup, argValues(q, "--query.replica-label"), "edgetel-query")
			tq := container(t, find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-thanos-query").Spec.Template.Spec, "query")
			assert.Equal(t, dedup, argValues(tq, "--query.replica-label"), "thanos query")
			c := container(t, find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor").Spec.Template.Spec, "compactor")
			assert.Equal(t, dedup, argValues(c, "--deduplication.replica-label"), "compactor")
			if several {
				assert.Equal(t, []string{"penalty"}, argValues(c, "--deduplication.func"), "compactor: one sample per scrape from several collectors")
			} else {
				assert.Empty(t, argValues(c, "--deduplication.func"), "compactor: one collector keeps the 1:1 merger")
			}
			assert.Contains(t, c.Args, "--compact.enable-vertical-compaction")
		})
	}
}
