package kube

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// The informer's transform keeps a node's taints, and they round-trip through Object.
func TestTaintsKept(t *testing.T) {
	taints := []corev1.Taint{{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute}}
	n := Node{Name: "edge-1", IP: "10.0.0.1", Ready: ReadyTrue, Taints: taints}
	slim, err := slimNode(n.Object())
	require.NoError(t, err)
	assert.Equal(t, taints, FromKube(slim.(*corev1.Node)).Taints)
}
