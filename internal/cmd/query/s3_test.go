package query

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/exporters/objstoreexporter"
	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/s3test"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// s3Outage is how long the S3 server stays killed: many times the exporter's longest wait
// between upload attempts (upload_retry.max_interval, 1s here) and longer than the S3 client's
// own retries of one request (minio-go tries 10 times with backoff: 5 to 8 s against a refused
// connection), so that whole attempts fail during the outage. Production outages last minutes to
// hours; only the number of failed attempts grows with them.
const s3Outage = 15 * time.Second

// s3Queries are answered by Thanos (store gateway + query) and edgetel-query over the bucket.
var s3Queries = []string{
	`up{job="kubeedge"}`,
	`count_over_time(up[1h])`,
	`sum by (node) (rate(kubelet_requests_total[15m]))`,
	`max_over_time(kubelet_requests_total[2h])`,
}

// The objstore exporter writes into the real S3 server (versitygw); the server is SIGKILLed for
// s3Outage while blocks are cut. Blocks cut during the outage stay on local disk (the failures
// counted, none dropped) and are uploaded once it is back; every sample pushed is in the bucket,
// `thanos tools bucket verify` finds nothing, and Thanos' store gateway behind Thanos Query and
// edgetel-query answer the same over the S3 bucket.
func TestS3OutageThanosAndEdgetelQueryAgree(t *testing.T) {
	bin := thanostest.Bin(t)
	srv := s3test.Start(t, "edgetel")
	ctx := context.Background()
	f := objstoreexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*objstoreexporter.Config)
	cfg.Directory = t.TempDir()
	cfg.ExternalLabels = map[string]string{"cluster": "s3"}
	cfg.Bucket = map[string]any{"type": "S3", "config": srv.Config(s3test.AccessKey, s3test.SecretKey)}
	cfg.UploadInterval = 100 * time.Millisecond
	cfg.UploadRetry.InitialInterval = 100 * time.Millisecond
	cfg.UploadRetry.MaxInterval = time.Second
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	set := exportertest.NewNopSettings(f.Type())
	set.TelemetrySettings = tel.NewTelemetrySettings()
	exp, err := f.CreateMetrics(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = exp.Shutdown(ctx)
		}
	})

	bkt, err := bucket.New(ctx, &bucket.Config{Type: "S3", Config: srv.Config(s3test.AccessKey, s3test.SecretKey)}, nil)
	require.NoError(t, err)
	t0 := time.Now().Add(-30 * time.Hour).Truncate(2 * time.Hour)
	nodes := []string{"edge-a", "edge-b", "edge-c"}
	push := func(from, to time.Duration) {
		for d := from; d < to; d += time.Minute {
			require.NoError(t, exp.ConsumeMetrics(ctx, nodeMetrics(t0.Add(d), int(d/time.Minute), nodes...)))
		}
	}
	blocks := func(n int) {
		require.Eventually(t, func() bool {
			metas, err := bucket.Blocks(ctx, bkt)
			return err == nil && len(metas) >= n
		}, time.Minute, 100*time.Millisecond, "%d blocks in the S3 bucket", n)
	}
	push(0, 7*time.Hour)
	blocks(2) // [0,2h) and [2h,4h); the head keeps [4h,7h)

	srv.Kill()
	killed := time.Now()
	push(7*time.Hour, 13*time.Hour) // cuts [4h,6h), [6h,8h) and [8h,10h) while S3 is down
	localBlocks := func() int {
		entries, err := os.ReadDir(filepath.Join(cfg.Directory, "tsdb"))
		require.NoError(t, err)
		n := 0
		for _, e := range entries {
			if len(e.Name()) == 26 && e.IsDir() { // a ULID
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return localBlocks() == 5 }, time.Minute, 100*time.Millisecond, "three blocks cut during the outage")
	time.Sleep(time.Until(killed.Add(s3Outage)))
	failures := counter(t, tel, "otelcol_exporter_objstore_upload_failures")
	t.Logf("S3 down for %s: %d failed upload attempts", time.Since(killed).Round(time.Second), failures)
	assert.GreaterOrEqual(t, failures, int64(2), "uploads were attempted and failed during the outage")
	assert.Equal(t, 5, localBlocks(), "the blocks waiting for S3 stay on local disk")
	assert.Zero(t, counter(t, tel, "otelcol_exporter_objstore_local_blocks_dropped"), "nothing dropped")

	srv.Restart()
	blocks(5)
	require.NoError(t, exp.Shutdown(ctx))
	stopped = true
	metas, err := bucket.Blocks(ctx, bkt)
	require.NoError(t, err)
	require.Len(t, metas, 5, "each block uploaded once")
	for i, m := range metas {
		assert.Equal(t, t0.Add(time.Duration(i)*2*time.Hour).UnixMilli(), m.MinTime, "block %d", i)
	}

	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(srv.YAML()), 0o600))
	verify := thanostest.Run(t, bin, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Empty(t, thanostest.Warnings(verify), "thanos tools bucket verify:\n%s", verify)

	// Every sample pushed before 10h (the five blocks): 3 nodes × 2 series × 600 minutes.
	const total = `sum(count_over_time({__name__=~".+"}[10h]))`
	end := t0.Add(10*time.Hour - time.Millisecond)
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+conf, "--data-dir="+t.TempDir())
	tq := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC)
	raw := url.Values{"max_source_resolution": {"0s"}}
	require.Eventually(t, func() bool {
		return scalar(t, "http://"+tq.HTTP, total, end, raw) == 3600
	}, time.Minute, 200*time.Millisecond, "thanos query over the store gateway counts every sample")

	c := DefaultConfig()
	c.BucketConfig = conf
	base := startQuery(t, c)
	require.Eventually(t, func() bool { return scalar(t, base, total, end, nil) == 3600 },
		time.Minute, 100*time.Millisecond, "edgetel-query counts every sample")

	for _, q := range s3Queries {
		theirs, err := thanostest.QueryRange(t, "http://"+tq.HTTP, q, t0, end, 10*time.Minute, raw)
		require.NoError(t, err, q)
		ours, err := thanostest.QueryRange(t, base, q, t0, end, 10*time.Minute, nil)
		require.NoError(t, err, q)
		require.NotEmpty(t, ours.Matrix, q)
		assert.Equal(t, theirs.Matrix, ours.Matrix, "thanos query and edgetel-query: %s", q)
	}
}

func scalar(t *testing.T, base, q string, at time.Time, extra url.Values) float64 {
	t.Helper()
	a, err := thanostest.Query(t, base, q, at, extra)
	if err != nil || len(a.Vector) != 1 {
		return -1
	}
	return float64(a.Vector[0].Value)
}

// counter sums an int64 counter of the exporter's telemetry over its attributes; 0 if never set.
func counter(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += p.Value
	}
	return n
}

// edgetel-query against an S3 bucket with a wrong secret key logs, at each sync, that the bucket
// refused the credentials and which keys to check, without the secret.
func TestEdgetelQueryNamesRefusedCredentials(t *testing.T) {
	srv := s3test.Start(t, "edgetel")
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	const wrong = "not-the-secret-key"
	require.NoError(t, os.WriteFile(conf, []byte(strings.Replace(srv.YAML(), s3test.SecretKey, wrong, 1)), 0o600))
	c := DefaultConfig()
	c.BucketConfig, c.Listen, c.CacheDir, c.SyncInterval = conf, "127.0.0.1:0", t.TempDir(), 100*time.Millisecond
	var log syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, slog.New(slog.NewTextHandler(&log, nil)), func(net.Addr) {})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "bucket sync failed") },
		30*time.Second, 50*time.Millisecond)
	out := log.String()
	assert.Contains(t, out, "the bucket refused the credentials (S3 SignatureDoesNotMatch, HTTP 403): check access_key and secret_key")
	assert.Contains(t, out, "level=ERROR")
	assert.NotContains(t, out, wrong)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
