package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
)

// TestEdgesimRegistersItsFleet checks the Node and Pod objects edgesim writes: what KubeEdge's
// edged would register, with Ready following the node's session and deletion removing both.
func TestEdgesimRegistersItsFleet(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	sim, err := edgesim.New(edgesim.Config{Nodes: 3, Seed: 11, Listen: "127.0.0.1:0", TLSDir: t.TempDir(), ManualStep: true})
	require.NoError(t, err)
	for _, ns := range sim.PodNamespaces() {
		require.NoError(t, c.EnsureNamespace(ctx, ns))
	}
	reg, err := sim.Registrar(edgesim.KubeOptions{Client: admin, NodeIP: "192.0.2.99", Port: 10350, Pods: true})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx))
	require.NoError(t, reg.Register(ctx), "registering again updates what exists")

	var status []edgesim.NodeStatus
	rec := httptest.NewRecorder()
	sim.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/nodes", nil))
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &status))
	node := sim.Fleet().Nodes[1]

	kn, err := admin.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "", kn.Labels[kube.LabelEdgeRole])
	assert.Equal(t, node.Labels[kube.LabelRegion], kn.Labels[kube.LabelRegion])
	assert.Equal(t, []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.99"}}, kn.Status.Addresses)
	assert.Equal(t, int32(10350), kn.Status.DaemonEndpoints.KubeletEndpoint.Port)
	assert.Equal(t, corev1.ConditionTrue, readyOf(kn))
	pods, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
	require.NoError(t, err)
	assert.Len(t, pods.Items, status[1].Pods, "the pods edgesim claims node %s runs", node.Name)

	sim.Disconnect(node.Name)
	require.NoError(t, reg.Sync(ctx))
	kn, err = admin.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.ConditionUnknown, readyOf(kn))
	sim.Reconnect(node.Name)
	require.NoError(t, reg.Sync(ctx))
	kn, err = admin.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.ConditionTrue, readyOf(kn))

	require.Error(t, reg.Delete(ctx, "no-such-node"))
	names := []string{}
	for _, n := range sim.Fleet().Nodes {
		names = append(names, n.Name)
	}
	require.NoError(t, reg.Delete(ctx, names...))
	_, err = admin.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "deleted node: %v", err)
	pods, err = admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
	require.NoError(t, err)
	assert.Empty(t, pods.Items)
	require.NoError(t, reg.Sync(ctx))
	_, err = admin.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a sync must not bring a deleted node back: %v", err)
}

func readyOf(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}
