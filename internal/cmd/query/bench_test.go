package query

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkQueryRange measures a dashboard-style range query over three cached blocks, through
// the HTTP handler.
func BenchmarkQueryRange(b *testing.B) {
	srv := edgetelServer(b, fleetBlocks(b), DefaultEngineOptions)
	params := url.Values{
		"query": {`sum by (site) (rate(container_cpu_usage_seconds_total{metrics_path="/metrics/resource"}[5m]))`},
		"start": {unix(testFleet.base)}, "end": {unix(testFleet.end())}, "step": {"60"},
	}
	u := srv + "/api/v1/query_range?" + params.Encode()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkSync measures a sync that finds nothing new: the steady state of the sync loop.
func BenchmarkSync(b *testing.B) {
	bkt := fsBucket(b)
	for _, d := range fleetBlocks(b) {
		uploadRaw(b, bkt, d)
	}
	s, err := NewStore(bkt, StoreOptions{Dir: b.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
