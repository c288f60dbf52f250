package discovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/internal/kube"
)

func TestShardEveryNodeExactlyOnce(t *testing.T) {
	for count := 1; count <= 8; count++ {
		sizes := make([]int, count)
		for i := range 10000 {
			name := fmt.Sprintf("edge-%05d", i)
			owners := 0
			for index := range count {
				if Shard(name, index, count) {
					owners++
					sizes[index]++
				}
			}
			require.Equal(t, 1, owners, "%s with %d shards", name, count)
		}
		for index, n := range sizes {
			// No shard far off its share.
			assert.InDelta(t, 10000/count, n, float64(10000/count)/5, "shard %d of %d", index, count)
		}
	}
}

// Going from N to N+1 shards moves only the nodes the new shard takes: about 1/(N+1) of them, each
// to the new shard (rendezvous hashing), where a hash modulo N moved most of them.
func TestReshardMovesOnlyTheNewShardsShare(t *testing.T) {
	const nodes = 10000
	for count := 1; count <= 8; count++ {
		moved := 0
		for i := range nodes {
			name := fmt.Sprintf("edge-%05d", i)
			before, after := ShardOf(name, count), ShardOf(name, count+1)
			if before != after {
				moved++
				require.Equal(t, count, after, "%s moved from %d to an old shard %d", name, before, after)
			}
		}
		want := nodes / (count + 1)
		assert.InDelta(t, want, moved, float64(want)/5, "%d -> %d shards", count, count+1)
	}
}

// recorder collects snapshots from a discoverer.
type recorder struct {
	mu    sync.Mutex
	snaps [][]Target
}

func (r *recorder) update(nodes []Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, nodes)
}

func (r *recorder) last() []Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil
	}
	return r.snaps[len(r.snaps)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func names(nodes []Target) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func run(t *testing.T, d Discoverer) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, rec.update) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return rec
}

func TestStatic(t *testing.T) {
	rec := run(t, Static{Nodes: []kube.Node{{Name: "b", IP: "10.0.0.2"}, {Name: "a", IP: "10.0.0.1"}}})
	require.Eventually(t, func() bool { return rec.count() == 1 }, time.Second, time.Millisecond)
	assert.Equal(t, []string{"a", "b"}, names(rec.last()))
	assert.True(t, rec.last()[0].IsReady())
}

func TestFileFollowsChangesAndKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.json")
	writeFile(t, path, `{"nodes": [{"name": "a", "ip": "10.0.0.1"}]}`)
	rec := run(t, File{Path: path, Interval: 10 * time.Millisecond, Logger: zap.NewNop()})
	require.Eventually(t, func() bool { return rec.count() == 1 }, time.Second, time.Millisecond)

	writeFile(t, path, `{"nodes": [{"name": "a", "ip": "10.0.0.1"}, {"name": "b", "ip": "10.0.0.2", "port": 10351}]}`)
	require.Eventually(t, func() bool { return len(rec.last()) == 2 }, 2*time.Second, time.Millisecond)

	// A broken or missing file keeps the last good nodes.
	n := rec.count()
	require.NoError(t, os.WriteFile(path, []byte(`{"nodes": [{"name": "c", "ip": "not-an-ip"}]}`), 0o600))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, os.Remove(path))
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, n, rec.count())
	assert.Equal(t, []string{"a", "b"}, names(rec.last()))

	writeFile(t, path, `{"nodes": [{"name": "c", "ip": "10.0.0.3"}]}`)
	require.Eventually(t, func() bool { return len(rec.last()) == 1 && rec.last()[0].Name == "c" }, 2*time.Second, time.Millisecond)
}

func TestFileMustExistAtStart(t *testing.T) {
	err := File{Path: filepath.Join(t.TempDir(), "none.json"), Interval: time.Second, Logger: zap.NewNop()}.
		Run(context.Background(), func([]Target) { t.Fatal("no update expected") })
	require.Error(t, err)
}

// writeFile replaces path atomically, as a ConfigMap update does.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(body), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func TestFileRejectsBadFiles(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      "{",
		"bad ip":        `{"nodes":[{"name":"a","ip":"nope"}]}`,
		"no name":       `{"nodes":[{"ip":"10.0.0.1"}]}`,
		"duplicate":     `{"nodes":[{"name":"a","ip":"10.0.0.1"},{"name":"a","ip":"10.0.0.2"}]}`,
		"bad port":      `{"nodes":[{"name":"a","ip":"10.0.0.1","port":70000}]}`,
		"unknown field": `{"nodes":[{"name":"a","ip":"10.0.0.1","lables":{}}]}`,
		"pod namespace": `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"Bad_NS","name":"p","containers":["c"]}]}]}`,
		"pod name":      `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"ns","name":"P/1","containers":["c"]}]}]}`,
		"no containers": `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"ns","name":"p"}]}]}`,
		"container":     `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"ns","name":"p","containers":["c_1"]}]}]}`,
		"pod twice":     `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"ns","name":"p","containers":["c"]},{"namespace":"ns","name":"p","containers":["d"]}]}]}`,
		"bad ready":     `{"nodes":[{"name":"a","ip":"10.0.0.1","ready":"yes"}]}`,
		"pod field":     `{"nodes":[{"name":"a","ip":"10.0.0.1","pods":[{"namespace":"ns","name":"p","containers":["c"],"node":"a"}]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nodes.json")
			writeFile(t, path, body)
			err := File{Path: path, Interval: time.Second, Logger: zap.NewNop()}.Run(context.Background(), func([]Target) { t.Fatal("no update expected") })
			assert.ErrorContains(t, err, path)
		})
	}
}

// The file format names nodes, addresses, kubelet ports and labels; edgesim's per-node "direct"
// address is still read, with a deprecation warning, for one release.
func TestFileReadsDeprecatedDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	writeFile(t, path, `{"nodes": [{"name": "a", "ip": "10.0.0.1", "port": 10351, "labels": {"x": "y"}, "direct": "127.0.0.1:4000"}]}`)
	core, logs := observer.New(zapcore.WarnLevel)
	rec := run(t, File{Path: path, Interval: time.Hour, Logger: zap.New(core)})
	require.Eventually(t, func() bool { return rec.count() == 1 }, time.Second, time.Millisecond)
	got := rec.last()[0]
	assert.Equal(t, "127.0.0.1:4000", got.Direct)
	assert.Equal(t, "10.0.0.1:10351", got.Address())
	assert.Equal(t, map[string]string{"x": "y"}, got.Labels)
	require.Equal(t, 1, logs.FilterMessageSnippet("deprecated").Len())

	writeFile(t, path, `{"nodes": [{"name": "a", "ip": "10.0.0.1"}]}`)
	quiet := run(t, File{Path: path, Interval: time.Hour, Logger: zap.New(core)})
	require.Eventually(t, func() bool { return quiet.count() == 1 }, time.Second, time.Millisecond)
	assert.Empty(t, quiet.last()[0].Direct)
	assert.Equal(t, 1, logs.FilterMessageSnippet("deprecated").Len(), "no warning without the field")
}

// A node file may list each node's pods, for the logs signal.
func TestFileReadsPods(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	writeFile(t, path, `{"nodes": [{"name": "a", "ip": "10.0.0.1", "pods": [{"namespace": "apps", "name": "web-1", "labels": {"app": "web"}, "containers": ["nginx", "sidecar"]}]}, {"name": "b", "ip": "10.0.0.2", "ready": "false"}]}`)
	rec := run(t, File{Path: path, Interval: time.Hour, Logger: zap.NewNop()})
	require.Eventually(t, func() bool { return rec.count() == 1 }, time.Second, time.Millisecond)
	got := rec.last()
	assert.Equal(t, []kube.Pod{{Namespace: "apps", Name: "web-1", Labels: map[string]string{"app": "web"}, Containers: []string{"nginx", "sidecar"}}}, got[0].Pods)
	assert.Empty(t, got[1].Pods)
	assert.Equal(t, kube.ReadyTrue, got[0].Ready, "ready by default")
	assert.Equal(t, kube.ReadyFalse, got[1].Ready)
}
