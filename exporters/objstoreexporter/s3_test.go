package objstoreexporter

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/s3test"
)

// noisyBatch is one scrape of n gauges with random values: about 9 bytes a sample in a block,
// where real data compresses to 1-2.
func noisyBatch(rng *rand.Rand, ts int64, n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubelet")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("edge_noise")
	dps := g.SetEmptyGauge().DataPoints()
	dps.EnsureCapacity(n)
	for i := range n {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(ts * 1e6))
		dp.SetDoubleValue(rng.Float64())
		dp.Attributes().PutStr("sensor", strconv.Itoa(i))
	}
	return md
}

// A block larger than the S3 part size goes up to the real S3 server as a multipart upload, and
// every file of it reads back from the bucket byte for byte as the exporter wrote it locally.
func TestS3LargeBlockUploadsInParts(t *testing.T) {
	srv := s3test.Start(t, "edgetel")
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	conf := srv.Config(s3test.AccessKey, s3test.SecretKey)
	conf["part_size"] = 5 << 20 // S3's smallest part; objstore's default is 64 MiB
	cfg.Bucket = map[string]any{"type": "S3", "config": conf}
	cfg.BlockDuration = 10 * time.Minute
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })

	// 2,000 series at 1 s: 1.2 M samples (about 11 MB of chunks) in the first block.
	rng := rand.New(rand.NewPCG(1, 2))
	for ts := t0; ts < t0+16*time.Minute.Milliseconds(); ts += time.Second.Milliseconds() {
		require.NoError(t, e.push(ctx, noisyBatch(rng, ts, 2000)))
	}
	bkt := openBucket(t, cfg)
	metas := waitBlocks(t, bkt, 1)
	id := metas[0].ULID.String()
	assert.Equal(t, int64(1_200_000), int64(metas[0].Stats.NumSamples))
	local := filepath.Join(cfg.Directory, "tsdb", id)
	for _, f := range metas[0].Thanos.Files {
		if f.RelPath == bucket.MetaFilename {
			continue
		}
		want, err := os.ReadFile(filepath.Join(local, f.RelPath))
		require.NoError(t, err)
		rc, err := bkt.Get(ctx, id+"/"+f.RelPath)
		require.NoError(t, err)
		var got bytes.Buffer
		_, err = got.ReadFrom(rc)
		require.NoError(t, rc.Close())
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got.Bytes()), "%s reads back as written (%d bytes, got %d)", f.RelPath, len(want), got.Len())
	}
	chunks := id + "/chunks/000001"
	parts, err := strconv.Atoi(srv.Parts(t, chunks))
	require.NoError(t, err, "%s went up in one PUT", chunks)
	t.Logf("%s: %d bytes in %d parts", chunks, metas[0].Thanos.Files[0].SizeBytes, parts)
	assert.GreaterOrEqual(t, parts, 2)
}

// Wrong credentials are logged at Error when the exporter starts (not a block later) and at each
// failed upload, with the S3 error code and the keys to check, never the secret; the block
// stays on local disk.
func TestS3WrongCredentialsAreReportedClearly(t *testing.T) {
	srv := s3test.Start(t, "edgetel")
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	const wrong = "not-the-secret-key"
	cfg.Bucket = map[string]any{"type": "S3", "config": srv.Config(s3test.AccessKey, wrong)}
	core, logs := observer.New(zapcore.InfoLevel)
	set := componenttest.NewNopTelemetrySettings()
	set.Logger = zap.New(core)
	e, err := newExporter(cfg, set)
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })

	errorWith := func(msg, want string) func() bool {
		return func() bool {
			for _, l := range logs.FilterMessageSnippet(msg).All() {
				if l.Level == zapcore.ErrorLevel && strings.Contains(l.ContextMap()["err"].(string), want) {
					t.Log(l.Message, l.ContextMap()["err"])
					return true
				}
			}
			return false
		}
	}
	require.Eventually(t, errorWith("the bucket cannot be used yet",
		"the bucket refused the credentials (S3 SignatureDoesNotMatch, HTTP 403): check access_key and secret_key"), 30*time.Second, 20*time.Millisecond, "logged at start")

	for _, md := range newDataset(1, t0, t0+4*hour).batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Eventually(t, errorWith("cut or upload failed",
		// A HEAD (does the block exist?) gets a 403 without a body: S3 names no reason.
		"the bucket refused the credentials (S3 AccessDenied, HTTP 403): check access_key and secret_key"), 30*time.Second, 20*time.Millisecond, "logged at the failed upload")
	assert.Len(t, e.db.Blocks(), 1, "the block stays local")
	for _, l := range logs.All() {
		assert.NotContains(t, fmt.Sprint(l.Message, l.ContextMap()), wrong)
	}
}
