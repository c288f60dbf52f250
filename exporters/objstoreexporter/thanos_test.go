package objstoreexporter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// thanosBin is the real Thanos (EDGETEL_THANOS, built by `make tool-thanos`).
func thanosBin(t *testing.T) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_THANOS", "tool-thanos")
}

// thanos runs a thanos command on the bucket of cfg and returns its log; it fails the test when
// the command fails.
func thanos(t *testing.T, cfg *Config, args ...string) string {
	t.Helper()
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, y, 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, thanosBin(t), append(args, "--objstore.config-file="+conf)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "thanos %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// warnings returns the lines of a Thanos log at level warn or error.
func warnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") {
			out = append(out, l)
		}
	}
	return out
}

// A late backlog makes the exporter upload an out-of-order block over a range it uploaded
// before: overlap by design (as Prometheus' own out-of-order blocks). Thanos' compactor with
// vertical compaction, as the chart runs it, merges the overlap; afterwards `thanos tools bucket
// verify` finds nothing and the bucket holds the same samples.
func TestThanosCompactsAndVerifiesTheBucket(t *testing.T) {
	thanosBin(t)
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.OutOfOrderWindow = 4 * time.Hour
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	bkt := openBucket(t, cfg)
	const minute = int64(time.Minute / time.Millisecond)
	lateFrom := t0 + 3*hour + 30*minute
	in := merge(newDataset(3, t0, lateFrom), newDataset(3, lateFrom+5*minute, t0+7*hour))
	for _, md := range in.batches {
		require.NoError(t, e.push(ctx, md))
	}
	waitBlocks(t, bkt, 2)
	late := newDataset(3, lateFrom, lateFrom+5*minute)
	more := newDataset(3, t0+7*hour, t0+9*hour)
	for _, md := range append(late.batches, more.batches...) {
		require.NoError(t, e.push(ctx, md))
	}
	waitBlocks(t, bkt, 4)
	require.NoError(t, e.Shutdown(ctx))
	dir, _ := downloadAll(t, bkt)
	want := readSamples(t, openReadOnly(t, dir), t0, t0+6*hour)

	before := thanos(t, cfg, "tools", "bucket", "verify")
	t.Logf("bucket verify before compaction:\n%s", strings.Join(warnings(before), "\n"))
	assert.Contains(t, strings.Join(warnings(before), "\n"), "overlap", "the out-of-order block overlaps an in-order one")

	thanos(t, cfg, "compact", "--data-dir="+t.TempDir(), "--http-address=127.0.0.1:0",
		"--compact.enable-vertical-compaction", "--consistency-delay=0s", "--delete-delay=0s")
	after := thanos(t, cfg, "tools", "bucket", "verify")
	assert.Empty(t, warnings(after), "bucket verify after compaction:\n%s", after)
	dir, metas := downloadAll(t, bkt)
	assert.Less(t, len(metas), 4, "the compactor merged blocks")
	assertSameSamples(t, want, readSamples(t, openReadOnly(t, dir), t0, t0+6*hour), "bucket after thanos compact")
}
