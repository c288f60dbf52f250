package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgetel/edgetel/internal/testing/charttest"
	"github.com/edgetel/edgetel/internal/testing/testcluster"
)

// One control plane for the package: it takes seconds to start.
var cp testcluster.Shared

func TestMain(m *testing.M) { os.Exit(cp.Run(m)) }

// Namespace is where the chart is installed (the release namespace).
const Namespace = "edgetel"

// chartValues turn on every component that talks to Kubernetes, with the transport that needs the
// most permissions (apiserver: nodes/proxy).
var chartValues = []string{
	"--set", "collector.transport=apiserver",
	"--set", "collector.networkPolicy.apiServerCIDRs={10.96.0.1/32}",
	// The fleet is thousands of generated nodes: every node, as a chart user must say explicitly.
	"--set", "collector.apiserver.allNodes=true",
	"--set", "onboard.controller.enabled=true",
	"--set", "onboard.controller.joinAPI.allowedGroups={edgetel:joiners}",
	"--set", "onboard.controller.joinAPI.allowedUsers={system:serviceaccount:" + Namespace + ":joiner}",
}

var (
	chartOnce sync.Once
	chartErr  error
	// chartObjs are the rendered chart's objects (workloads too: tests run them as processes).
	chartObjs []charttest.Object
)

// cluster returns the control plane with the chart's ServiceAccounts, RBAC and CRDs applied.
func cluster(t *testing.T) *testcluster.Cluster {
	t.Helper()
	c := cp.Get(t)
	chartOnce.Do(func() {
		var manifests []byte
		if manifests, chartErr = charttest.Render(t, chartValues...); chartErr == nil {
			if chartObjs, chartErr = charttest.DecodeAll(manifests); chartErr == nil {
				chartErr = applyChart(context.Background(), c, chartObjs)
			}
		}
	})
	require.NoError(t, chartErr, "applying the chart")
	return c
}

// applyChart creates the chart's ServiceAccounts, Roles, ClusterRoles, bindings, CRDs, ConfigMaps
// and Leases (the onboarding controller's are created by the chart, not by it) through
// client-go, as `helm install` would (the workloads are run by the tests themselves).
func applyChart(ctx context.Context, c *testcluster.Cluster, objs []charttest.Object) error {
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	ext, err := apiextensionsclient.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	if err := c.EnsureNamespace(ctx, Namespace); err != nil {
		return err
	}
	create := metav1.CreateOptions{}
	for _, o := range objs {
		ns := Namespace
		var err error
		switch obj := o.Obj.(type) {
		case *corev1.ServiceAccount:
			_, err = client.CoreV1().ServiceAccounts(ns).Create(ctx, obj, create)
		case *rbacv1.Role:
			if obj.Namespace != "" {
				ns = obj.Namespace
			}
			if err = c.EnsureNamespace(ctx, ns); err == nil {
				_, err = client.RbacV1().Roles(ns).Create(ctx, obj, create)
			}
		case *rbacv1.RoleBinding:
			if obj.Namespace != "" {
				ns = obj.Namespace
			}
			if err = c.EnsureNamespace(ctx, ns); err == nil {
				_, err = client.RbacV1().RoleBindings(ns).Create(ctx, obj, create)
			}
		case *rbacv1.ClusterRole:
			_, err = client.RbacV1().ClusterRoles().Create(ctx, obj, create)
		case *rbacv1.ClusterRoleBinding:
			_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, obj, create)
		case *corev1.ConfigMap:
			_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, obj, create)
		case *coordinationv1.Lease:
			_, err = client.CoordinationV1().Leases(ns).Create(ctx, obj, create)
		case *apiextensionsv1.CustomResourceDefinition:
			_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, obj, create)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GVK.Kind, o.Name, err)
		}
	}
	return nil
}

// kubeconfigFor writes a kubeconfig of ServiceAccount Namespace/name (a TokenRequest token) and
// returns its path.
func kubeconfigFor(t *testing.T, c *testcluster.Cluster, name string, audiences ...string) string {
	t.Helper()
	cfg, err := c.ServiceAccountConfig(context.Background(), Namespace, name, audiences...)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	require.NoError(t, testcluster.WriteKubeconfig(cfg, path))
	return path
}
