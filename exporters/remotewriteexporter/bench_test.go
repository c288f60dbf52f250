package remotewriteexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/diskqueue"
	"go.opentelemetry.io/collector/component/componenttest"
)

// BenchmarkPipeline measures samples/s from ConsumeMetrics through conversion, the disk
// buffer and the sender into a local sink (loopback HTTP, body discarded). Each op is one
// kubelet-like batch of 3000 samples; the clock stops when the last sample is acknowledged.
func BenchmarkPipeline(b *testing.B) {
	for _, fsync := range []string{"never", "interval", "always"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			sk := newSink(b)
			sk.drainOnly.Store(true)
			cfg := testConfig(b, sk.url())
			cfg.Buffer.Fsync = fsyncPolicy(fsync)
			e := startExporter(b, cfg, componenttest.NewNopTelemetrySettings(), nil)
			md := bigMetrics(200, time.Now().UnixMilli())
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				require.NoError(b, e.push(context.Background(), md))
			}
			total := int64(3000 * b.N)
			waitFor(b, 5*time.Minute, "acknowledgement", func() bool { return e.tel.sentTotal.Load() == total })
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkBacklogDrain builds a backlog while the remote end is down, then brings it back and
// keeps live data coming at a fixed rate, as an edge agent does after a cloud-link outage. It
// reports the drain rate (backlog samples per second until the backlog is gone) against the
// live ingest rate; the goal is a ratio of 10 or more. One op is one 3000-sample batch of
// backlog.
func BenchmarkBacklogDrain(b *testing.B) {
	const liveEvery = 50 * time.Millisecond // 3000 samples per 50 ms: 60k samples/s of live data
	for _, maxSamples := range []int{2000, 10000} {
		b.Run(fmt.Sprintf("max_samples_per_send=%d", maxSamples), func(b *testing.B) {
			sk := newSink(b)
			sk.drainOnly.Store(true)
			sk.down.Store(true)
			cfg := testConfig(b, sk.url())
			cfg.Sending.MaxSamplesPerSend = maxSamples
			cfg.RetryConfig.MaxInterval = 50 * time.Millisecond
			e := startExporter(b, cfg, componenttest.NewNopTelemetrySettings(), nil)
			md := bigMetrics(200, time.Now().UnixMilli())
			for i := 0; i < b.N; i++ {
				require.NoError(b, e.push(context.Background(), md))
			}
			backlog := int64(3000 * b.N)
			backlogEnd := e.q.Stats().End

			b.ResetTimer()
			start := time.Now()
			sk.down.Store(false)
			stop := make(chan struct{})
			liveDone := make(chan struct{})
			go func() {
				t := time.NewTicker(liveEvery)
				defer t.Stop()
				for {
					select {
					case <-stop:
						close(liveDone)
						return
					case <-t.C:
						if err := e.push(context.Background(), md); err != nil {
							panic(err)
						}
					}
				}
			}()
			// Drained when the committed position passes the last backlog record: the live
			// samples sent meanwhile do not count.
			waitFor(b, 10*time.Minute, "drain", func() bool { return e.q.Stats().Committed >= backlogEnd })
			drain := time.Since(start)
			close(stop)
			<-liveDone
			b.StopTimer()
			liveRate := 3000 / liveEvery.Seconds()
			drainRate := float64(backlog) / drain.Seconds()
			b.ReportMetric(drainRate, "drain_samples/s")
			b.ReportMetric(liveRate, "live_samples/s")
			b.ReportMetric(drainRate/liveRate, "drain/live")
		})
	}
}

func fsyncPolicy(s string) diskqueue.SyncPolicy { return diskqueue.SyncPolicy(s) }
