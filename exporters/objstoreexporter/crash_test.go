package objstoreexporter

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component/componenttest"
)

// The crash test re-executes the test binary: the child runs the exporter until it is inside an
// upload, and the parent kills it with SIGKILL there.
const (
	crashModeEnv = "OBJSTORE_CRASH_MODE" // "cut": die before any object of a cut block is uploaded; "meta": die after meta.json, before the upload is recorded
	crashDirEnv  = "OBJSTORE_CRASH_DIR"
)

func crashMarker(dir string) string { return filepath.Join(dir, "child-blocked") }

// haltingBucket stops the child forever at the chosen point of the first upload.
type haltingBucket struct {
	objstore.Bucket
	mode   string
	once   sync.Once
	halted chan string // receives the name of the object the upload halted at
}

func (b *haltingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	switch {
	case b.mode == "cut":
	case b.mode == "meta" && strings.HasSuffix(name, "/meta.json"):
		if err := b.Bucket.Upload(ctx, name, r, opts...); err != nil {
			return err
		}
	default:
		return b.Bucket.Upload(ctx, name, r, opts...)
	}
	b.once.Do(func() { b.halted <- name })
	select {} // wait here for SIGKILL
}

func runCrashChild(t *testing.T, mode, dir string) {
	cfg := testConfig(dir)
	halted := make(chan string, 1)
	e := newTestExporter(t, cfg, nil, func(b objstore.Bucket) objstore.Bucket {
		return &haltingBucket{Bucket: b, mode: mode, halted: halted}
	})
	require.NoError(t, e.Start(context.Background(), componenttest.NewNopHost()))
	for _, md := range newDataset(2, t0, t0+7*hour).batches {
		require.NoError(t, e.push(context.Background(), md))
	}
	// Every push was acknowledged and the upload is stuck: now the parent may kill us.
	select {
	case name := <-halted:
		require.NoError(t, os.WriteFile(crashMarker(dir), []byte(name), 0o600))
	case <-time.After(time.Minute):
		t.Fatal("the upload never reached the halting point")
	}
	time.Sleep(2 * time.Minute)
	t.Fatal("the parent did not kill the child")
}

// countingBucket counts the uploads of each object.
type countingBucket struct {
	objstore.Bucket
	mu sync.Mutex
	n  map[string]int
}

func (b *countingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.n[name]++
	b.mu.Unlock()
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *countingBucket) count(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[name]
}

func TestCrashBetweenCutAndUpload(t *testing.T) {
	if mode := os.Getenv(crashModeEnv); mode != "" {
		runCrashChild(t, mode, os.Getenv(crashDirEnv))
		return
	}
	for _, mode := range []string{"cut", "meta"} {
		t.Run(mode, func(t *testing.T) { testCrash(t, mode) })
	}
}

func testCrash(t *testing.T, mode string) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBetweenCutAndUpload$")
	cmd.Env = append(os.Environ(), crashModeEnv+"="+mode, crashDirEnv+"="+dir)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		_, err := os.Stat(crashMarker(dir))
		return err == nil
	}, 90*time.Second, 20*time.Millisecond, "child never reached the upload: %s", out)
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no Shutdown, no flush
	_ = cmd.Wait()
	haltedAt, err := os.ReadFile(crashMarker(dir))
	require.NoError(t, err)

	ctx := context.Background()
	cfg := testConfig(dir)
	var counting *countingBucket
	e := newTestExporter(t, cfg, nil, func(b objstore.Bucket) objstore.Bucket {
		counting = &countingBucket{Bucket: b, n: map[string]int{}}
		return counting
	})
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })

	bkt := openBucket(t, cfg)
	// The two blocks the child cut, then the two its head (4h to 7h) is written out as by the
	// replay after the restart.
	metas := waitBlocks(t, bkt, 4)
	for i, m := range metas[:2] {
		name := m.ULID.String() + "/meta.json"
		want := 1
		if mode == "meta" && i == 0 {
			require.Equal(t, name, string(haltedAt), "the child died right after this meta.json")
			want = 0 // uploaded by the child; the restart must not upload it again
		}
		assert.Equal(t, want, counting.count(name), "uploads of %s after the restart", name)
		assert.Equal(t, t0+int64(i)*2*hour, m.MinTime)
	}
	for i, m := range metas[2:] {
		assert.Equal(t, t0+int64(i+2)*2*hour, m.MinTime, "a replayed block holds one block range")
		assert.Equal(t, 1, counting.count(m.ULID.String()+"/meta.json"))
	}
	require.Eventually(t, func() bool { return e.shipper.uploaded(metas[3].ULID) }, 10*time.Second, 10*time.Millisecond)

	// Nothing lost: the bucket holds everything, the cut blocks and the replayed head.
	ds := newDataset(2, t0, t0+7*hour)
	bdir, _ := downloadAll(t, bkt)
	assertSameSamples(t, ds.before(t0+7*hour), readSamples(t, openReadOnly(t, bdir), t0, t0+7*hour), "bucket after crash")
	assertSameSamples(t, ds.before(t0+7*hour), readSamples(t, e.store, t0, t0+7*hour), "local tsdb after crash")

	// A second restart uploads nothing.
	require.NoError(t, e.Shutdown(ctx))
	e2 := newTestExporter(t, cfg, nil, func(b objstore.Bucket) objstore.Bucket {
		counting = &countingBucket{Bucket: b, n: map[string]int{}}
		return counting
	})
	require.NoError(t, e2.Start(ctx, componenttest.NewNopHost()))
	time.Sleep(3 * cfg.UploadInterval)
	require.NoError(t, e2.Shutdown(ctx))
	counting.mu.Lock()
	assert.Empty(t, counting.n)
	counting.mu.Unlock()
}
