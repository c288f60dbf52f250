package testcluster

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var cp Shared

func TestMain(m *testing.M) { os.Exit(cp.Run(m)) }

func TestServiceAccountIdentityIsAuthorizedByRBAC(t *testing.T) {
	c := cp.Get(t)
	t.Logf("control plane ready in %v", cp.Started)
	ctx := context.Background()
	require.NoError(t, c.EnsureNamespace(ctx, "tc"))
	admin, err := Client(c.Admin)
	require.NoError(t, err)
	_, err = admin.CoreV1().ServiceAccounts("tc").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	cfg, err := c.ServiceAccountConfig(ctx, "tc", "reader")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, WriteKubeconfig(cfg, path))
	loaded, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	sa, err := kubernetes.NewForConfig(loaded)
	require.NoError(t, err)

	// No binding yet: the real authorizer refuses.
	_, err = sa.CoreV1().ConfigMaps("tc").List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "want Forbidden, got %v", err)
	assert.Contains(t, err.Error(), "system:serviceaccount:tc:reader")

	// TokenReview answers for the token, with its audience.
	token, err := c.ServiceAccountToken(ctx, "tc", "reader", "edgetel-test")
	require.NoError(t, err)
	review, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{"edgetel-test"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.True(t, review.Status.Authenticated, review.Status.Error)
	assert.Equal(t, "system:serviceaccount:tc:reader", review.Status.User.Username)
	review, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{"someone-else"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, review.Status.Authenticated, "a token for another audience must not authenticate")
}

func TestStopLeavesNoProcess(t *testing.T) {
	cp.Get(t) // skips without the binaries
	bins, err := BinariesFromEnv()
	require.NoError(t, err)
	c, err := Start(context.Background(), bins, t.TempDir())
	require.NoError(t, err)
	pids := make([]int, 0, len(c.procs))
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	c.Stop()
	c.Stop()
	for _, pgid := range pids {
		// Signal 0 to the group finds any process left in it, zombies included.
		assert.ErrorIs(t, syscall.Kill(-pgid, 0), syscall.ESRCH, "process group %d still has processes", pgid)
	}
}
