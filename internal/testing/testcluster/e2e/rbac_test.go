package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/charttest"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

// With transport apiserver and collector.apiserver.nodeNames, the collector's ClusterRole lets
// the real kube-apiserver proxy to the listed edge node only: a cloud node's kubelet, which the
// chart says is out of reach, is Forbidden through the node proxy.
func TestCollectorNodeProxyOnlyOnListedEdgeNodes(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)

	manifests, err := charttest.Render(t, "--set", "collector.transport=apiserver",
		"--set", "collector.networkPolicy.apiServerCIDRs={10.96.0.1/32}",
		"--set", "collector.apiserver.nodeNames={edge-listed}")
	require.NoError(t, err)
	objs, err := charttest.DecodeAll(manifests)
	require.NoError(t, err)
	var role *rbacv1.ClusterRole
	for _, o := range objs {
		if r, ok := o.Obj.(*rbacv1.ClusterRole); ok && r.Name == "edgetel-collector" {
			role = r
		}
	}
	require.NotNil(t, role, "the collector's ClusterRole")

	// The rendered role under its own name, bound to a ServiceAccount of its own (the shared
	// chart installed in this control plane grants every node).
	const name = "collector-listed-nodes"
	role.ObjectMeta = metav1.ObjectMeta{Name: name}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().ServiceAccounts(Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: Namespace}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
		_ = admin.CoreV1().ServiceAccounts(Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	})

	// Both nodes point at a closed loopback port: an allowed request gets as far as dialing.
	edge := fleet.Node{Name: "edge-listed", IP: "127.0.0.1", Port: 1}.KubeNode(corev1.ConditionTrue)
	cloud := fleet.Node{Name: "cloud-unlisted", IP: "127.0.0.1", Port: 1}.KubeNode(corev1.ConditionTrue)
	delete(cloud.Labels, kube.LabelEdgeRole)
	delete(cloud.Labels, kube.LabelAgentRole)
	for _, n := range []*corev1.Node{edge, cloud} {
		_, err = admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}) })
	}

	cfg, err := c.ServiceAccountConfig(ctx, Namespace, name)
	require.NoError(t, err)
	collector, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	proxy := func(node string) error {
		return collector.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + node + "/proxy/metrics").Do(ctx).Error()
	}
	err = proxy("cloud-unlisted")
	assert.True(t, apierrors.IsForbidden(err), "a cloud node's kubelet through the proxy: want Forbidden, got %v", err)
	err = proxy("edge-listed")
	assert.Error(t, err, "nothing listens on the edge node's port")
	assert.False(t, apierrors.IsForbidden(err), "the listed edge node is allowed (the proxy dials it): %v", err)
	// The collector still discovers every node.
	_, err = collector.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	assert.NoError(t, err)
}
