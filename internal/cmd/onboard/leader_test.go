package onboard_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/cmd/onboard"
)

func TestOnlyOneReplicaLeads(t *testing.T) {
	kube := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	var running, maxRunning, starts atomic.Int32
	work := func(ctx context.Context) {
		n := running.Add(1)
		starts.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		<-ctx.Done()
		running.Add(-1)
	}
	done := make(chan error, 2)
	for _, id := range []string{"pod-0", "pod-1"} {
		go func() {
			done <- onboard.RunAsLeader(ctx, onboard.LeaderConfig{Client: kube, Namespace: "edgetel", Name: "edgetel-onboard",
				Identity: id, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 100 * time.Millisecond}, work)
		}()
	}
	require.Eventually(t, func() bool { return starts.Load() == 1 }, 5*time.Second, 10*time.Millisecond)
	// Longer than a lease: the other replica must still wait. The renew deadline leaves room for a
	// loaded machine (`make test` runs packages in parallel): a leader that cannot renew in time
	// loses its lease, which is leader election working, not the property tested here.
	time.Sleep(4500 * time.Millisecond)
	assert.Equal(t, int32(1), maxRunning.Load())
	assert.Equal(t, int32(1), starts.Load())
	cancel()
	for i := 0; i < 2; i++ {
		require.NoError(t, <-done)
	}
	assert.Equal(t, int32(0), running.Load(), "the leader's work returned before RunAsLeader did")
}

func TestRunAsLeaderNeedsIdentity(t *testing.T) {
	err := onboard.RunAsLeader(context.Background(), onboard.LeaderConfig{Client: fake.NewClientset(), Namespace: "a", Name: "b"}, func(context.Context) {})
	require.Error(t, err)
}
