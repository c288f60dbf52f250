package shardset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCountRoundsUp(t *testing.T) {
	for _, c := range []struct{ replicas, perShard, want int }{
		{0, 1, 1}, {1, 1, 1}, {3, 1, 3}, {4, 2, 2}, {5, 2, 3}, {6, 0, 6},
	} {
		assert.Equal(t, c.want, Count(c.replicas, c.perShard), "%d replicas, %d per shard", c.replicas, c.perShard)
	}
}

func TestOrdinal(t *testing.T) {
	for pod, want := range map[string]int{"edgetel-collector-0": 0, "edgetel-collector-12": 12} {
		i, ok := ordinal("edgetel-collector", pod)
		assert.True(t, ok, pod)
		assert.Equal(t, want, i, pod)
	}
	for _, pod := range []string{"edgetel-collector", "edgetel-collector-x", "other-1", "edgetel-collector--1", "edgetel-query-0"} {
		_, ok := ordinal("edgetel-collector", pod)
		assert.False(t, ok, pod)
	}
}

// A pod counts when Ready and not being deleted: a terminating pod is about to stop scraping.
func TestPodReady(t *testing.T) {
	ready := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	assert.True(t, podReady(ready))
	slim, err := slimPod(ready)
	assert.NoError(t, err)
	assert.True(t, podReady(slim.(*corev1.Pod)), "the slimmed pod keeps its Ready condition")
	terminating := ready.DeepCopy()
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	assert.False(t, podReady(terminating))
	notReady := ready.DeepCopy()
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	assert.False(t, podReady(notReady))
	assert.False(t, podReady(&corev1.Pod{}))
}
