package charttest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// A reshard needs no manual step: between two shard counts the rendered chart differs only in
// the collector StatefulSet's spec.replicas (and the helm test pod that visits every pod). The
// pod template, and the ConfigMap whose checksum it carries, stay the same, so no pod restarts;
// the receivers follow the count from the StatefulSet itself.
func TestReshardChangesOnlyReplicas(t *testing.T) {
	for _, perShard := range []int{1, 2} {
		t.Run(fmt.Sprint(perShard), func(t *testing.T) {
			rps := fmt.Sprintf("collector.replicasPerShard=%d", perShard)
			from := rendered(t, "--set", "collector.shards=2", "--set", rps)
			to := rendered(t, "--set", "collector.shards=3", "--set", rps)
			require.Equal(t, names(from), names(to), "a reshard renders the same objects")
			for i, o := range from {
				if o.GVK.Kind == "Pod" { // helm test hook
					continue
				}
				if o.GVK.Kind == "Secret" && o.Name == "edgetel-head-token" {
					continue // random at each render; an upgrade keeps the installed one (lookup)
				}
				a, b := o.Obj, to[i].Obj
				if o.GVK.Kind == "StatefulSet" && o.Name == "edgetel-collector" {
					sa, sb := a.(*appsv1.StatefulSet).DeepCopy(), b.(*appsv1.StatefulSet).DeepCopy()
					assert.EqualValues(t, 2*perShard, *sa.Spec.Replicas)
					assert.EqualValues(t, 3*perShard, *sb.Spec.Replicas)
					sa.Spec.Replicas, sb.Spec.Replicas = nil, nil
					a, b = sa, sb
				}
				if a == nil {
					assert.Equal(t, o.External, to[i].External, "%s/%s", o.GVK.Kind, o.Name)
					continue
				}
				assert.True(t, equality.Semantic.DeepEqual(a, b), "%s/%s changes with collector.shards", o.GVK.Kind, o.Name)
			}
			cfg := collectorConfig(t, to)
			assert.Equal(t, map[string]any{"index": "${env:SHARD_INDEX}", "replicas_per_shard": float64(perShard),
				"statefulset": map[string]any{"name": "edgetel-collector", "namespace": "edgetel"}},
				dig(t, cfg, "receivers", "kubeedge", "shard"))
		})
	}
}

func names(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GVK.Kind + "/" + o.Name
	}
	return out
}

// The receiver reads its own StatefulSet (by name) and its pods, in the release's namespace
// only; turned off, the count is in the ConfigMap again and no Role is rendered.
func TestReshardRole(t *testing.T) {
	objs := rendered(t)
	role := find[*rbacv1.Role](t, objs, "Role", "edgetel-collector-shards")
	assert.Equal(t, "edgetel", role.Namespace)
	granted, err := Granted(role.Rules)
	require.NoError(t, err)
	assert.Equal(t, "get apps/statefulsets edgetel-collector\nlist apps/statefulsets edgetel-collector\nlist core/pods\nwatch apps/statefulsets edgetel-collector\nwatch core/pods",
		Format(granted))
	binding := find[*rbacv1.RoleBinding](t, objs, "RoleBinding", "edgetel-collector-shards")
	assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "edgetel-collector-shards"}, binding.RoleRef)
	assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "edgetel-collector", Namespace: "edgetel"}}, binding.Subjects)
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	assert.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy)
	require.NotNil(t, sts.Spec.Template.Spec.TerminationGracePeriodSeconds)
	assert.EqualValues(t, 120, *sts.Spec.Template.Spec.TerminationGracePeriodSeconds)

	delay := collectorConfig(t, rendered(t, "--set", "collector.shardHandoverDelay=90s"))
	assert.Equal(t, "90s", dig(t, delay, "receivers", "kubeedge", "shard", "statefulset", "handover_delay"))

	off := rendered(t, "--set", "collector.followShards=false", "--set", "collector.shards=3")
	assert.False(t, has(off, "Role", "edgetel-collector-shards"))
	assert.False(t, has(off, "RoleBinding", "edgetel-collector-shards"))
	assert.Equal(t, map[string]any{"index": "${env:SHARD_INDEX}", "count": float64(3), "replicas_per_shard": float64(1)},
		dig(t, collectorConfig(t, off), "receivers", "kubeedge", "shard"))
}
