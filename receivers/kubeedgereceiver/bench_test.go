package kubeedgereceiver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// BenchmarkScrapeCadvisor measures one target's scrape of the cadvisor capture through a TLS
// cloudcore stand-in on loopback: fetch, body checks, parse, relabel-free conversion to pmetric,
// staleness bookkeeping. It reports samples/s and allocations per sample.
func BenchmarkScrapeCadvisor(b *testing.B) {
	body := fixture(b, "metrics-cadvisor-1.35.txt")
	cc := &fakeCloudcore{bodies: map[string]map[string][]byte{}, hosts: map[string]int{}, handle: map[string]http.HandlerFunc{}}
	cc.Server = httptest.NewTLSServer(http.HandlerFunc(cc.serve))
	defer cc.Close()
	cc.set("10.0.0.1:10351", "/metrics/cadvisor", body)

	cfg := createDefaultConfig().(*Config)
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Resource.Enabled = false, false
	cfg.Transport.Cloudcore.Endpoints = []string{cc.Listener.Addr().String()}
	cfg.Transport.Cloudcore.TLS.InsecureSkipVerify = true
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), testRegistry)
	if err != nil {
		b.Fatal(err)
	}
	if r.transport, err = r.build.transport(context.Background(), cfg.MaxConcurrentScrapes); err != nil {
		b.Fatal(err)
	}
	r.sem, r.converting = make(chan struct{}, 1), make(chan struct{}, 1)
	n := discovery.Target{Node: kube.Node{Ready: kube.ReadyTrue}}
	n.Name, n.IP, n.KubeletPort = "edge-1", "10.0.0.1", 10351
	loop := newNodeLoop(r, n)
	tgt := loop.targets[0]
	ctx := context.Background()

	// The first scrape fills the series cache, as on a long-running collector.
	if res := loop.scrapeTarget(ctx, tgt, time.Now().UnixMilli(), pmetric.NewMetricSlice(), cfg.NodeSeriesLimit); !res.up {
		b.Fatal("first scrape failed")
	}
	var before, after runtime.MemStats
	samples := 0
	b.ReportAllocs()
	b.ResetTimer()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		res := loop.scrapeTarget(ctx, tgt, time.Now().UnixMilli(), pmetric.NewMetricSlice(), cfg.NodeSeriesLimit)
		if !res.up {
			b.Fatal("scrape failed")
		}
		samples += res.kept
	}
	runtime.ReadMemStats(&after)
	b.StopTimer()
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(samples), "allocs/sample")
}
