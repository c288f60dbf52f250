package testcluster

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Shared is one control plane for a whole test package: startup costs seconds, so the first
// test that needs it starts it and the package's TestMain stops it:
//
//	var cp testcluster.Shared
//	func TestMain(m *testing.M) { os.Exit(cp.Run(m)) }
//	func TestX(t *testing.T) { c := cp.Get(t) ... }
type Shared struct {
	once    sync.Once
	cluster *Cluster
	skip    string
	err     error
	dir     string
	// Started is how long the control plane took to become ready (zero before).
	Started time.Duration
}

// Run runs the package's tests and stops the control plane after them.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	s.stop()
	return code
}

// Get returns the running control plane, starting it on first use. A test skips, with the
// reason, when the binaries are not configured, and fails when they are but the control plane
// does not start.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(s.start)
	if s.skip != "" {
		t.Skip(s.skip)
	}
	if s.err != nil {
		t.Fatalf("control plane: %v", s.err)
	}
	return s.cluster
}

func (s *Shared) start() {
	bins, err := BinariesFromEnv()
	if err != nil {
		if os.Getenv(EnvKubeAPIServer) == "" || os.Getenv(EnvEtcd) == "" {
			s.skip = err.Error()
		} else {
			s.err = err
		}
		return
	}
	s.dir, s.err = os.MkdirTemp("", "testcluster-")
	if s.err != nil {
		return
	}
	begin := time.Now()
	s.cluster, s.err = Start(context.Background(), bins, s.dir)
	s.Started = time.Since(begin)
}

func (s *Shared) stop() {
	if s.cluster != nil {
		s.cluster.Stop()
	}
	// Logs stay when the control plane failed to start, for the message that names them.
	if s.dir != "" && s.err == nil {
		os.RemoveAll(s.dir)
	}
}

// NodeAddress is the cluster's NodeIP; a test that needs the node proxy skips, with the reason,
// on a machine without a global unicast address.
func (c *Cluster) NodeAddress(t testing.TB) string {
	t.Helper()
	if c.NodeIP == "" {
		t.Skipf("the API server's node proxy cannot reach this machine: %v", c.nodeIPErr)
	}
	return c.NodeIP
}
