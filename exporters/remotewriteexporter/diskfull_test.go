package remotewriteexporter

import (
	"context"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
)

// A full disk makes ConsumeMetrics fail with an error (so the caller knows the batch was not
// taken), leaves the buffer readable, and loses nothing accepted before or after. The full
// disk is RLIMIT_FSIZE: writes past the limit fail with EFBIG, as they would with ENOSPC.
func TestDiskFullFailsConsumeAndLosesNothing(t *testing.T) {
	sk := newSink(t)
	sk.down.Store(true)
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	const nSeries, base = 50, 7_000_000
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, base)))

	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = uint64(segmentBytes(t, cfg.Buffer.Directory)) + 10
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	err := e.push(context.Background(), gaugeBatch(nSeries, 1, base))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err)
	assert.ErrorContains(t, err, "buffer")

	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 2, base)))
	require.NoError(t, e.shutdown(context.Background()))
	sk.down.Store(false)
	e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	waitFor(t, 20*time.Second, "delivery", func() bool { return sk.samples() >= 2*nSeries })
	time.Sleep(50 * time.Millisecond)
	checkBatches(t, sk.snapshot(), nSeries, []int{0, 2}, base)
	assert.Zero(t, e.tel.droppedTotal.Load(), "no torn record was left behind")
}
