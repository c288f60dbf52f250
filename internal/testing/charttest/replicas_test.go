package charttest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// collector.replicasPerShard: shards × replicas pods; the receiver takes the shard from the
// ordinal; the blocks carry the replica label instead of the shard label, and both readers
// deduplicate on it; a PodDisruptionBudget lets one pod go at a time and the pods spread over
// nodes. With one replica per shard nothing of it is rendered.
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

	cfg := collectorConfig(t, objs)
	assert.Equal(t, float64(2), dig(t, cfg, "receivers", "kubeedge", "shard", "replicas_per_shard"))
	assert.Equal(t, map[string]any{"cluster": "edgetel", "replica": "${env:SHARD_INDEX}"},
		dig(t, cfg, "exporters", "objstore", "external_labels"))
	_, q := queryContainer(t, objs)
	v, _ := arg(q, "--query.replica-label")
	assert.Equal(t, "replica", v)
	rw := collectorConfig(t, rendered(t, "--set", "collector.shards=2", "--set", "collector.replicasPerShard=2",
		"--set", "collector.remoteWrite.enabled=true", "--set", "collector.remoteWrite.endpoint=https://receive.example/api/v1/receive"))
	assert.Equal(t, map[string]any{"cluster": "edgetel", "replica": "${env:SHARD_INDEX}"},
		dig(t, rw, "exporters", "edgeremotewrite", "external_labels"), "remote write carries the replica label too")

	one := rendered(t, "--set", "collector.shards=2")
	sts = find[*appsv1.StatefulSet](t, one, "StatefulSet", "edgetel-collector")
	assert.EqualValues(t, 2, *sts.Spec.Replicas)
	assert.Nil(t, sts.Spec.Template.Spec.Affinity)
	assert.Equal(t, map[string]any{"cluster": "edgetel", "shard": "${env:SHARD_INDEX}"},
		dig(t, collectorConfig(t, one), "exporters", "objstore", "external_labels"))
	_, q = queryContainer(t, one)
	_, on := arg(q, "--query.replica-label")
	assert.False(t, on)
}
