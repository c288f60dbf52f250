package edgesim

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// BenchmarkCadvisorScrape scrapes /metrics/cadvisor of a 1,000-node fleet round-robin through the
// cloudcore endpoint with a keep-alive TLS client in the same process, and reports scrapes/s
// and the body bytes moved. "cached" serves each node's body rendered once per step (the
// normal case when a step outlasts a scrape round); "render" disables the cache, so every
// scrape renders its body from the templates.
func BenchmarkCadvisorScrape(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int64
	}{{"cached", 0}, {"render", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startSim(b, Config{Nodes: 1000, Seed: 1, ManualStep: true, CacheBytes: bc.cache})
			c := client(b, s, false)
			hosts := make([]string, 0, 1000)
			for _, n := range s.Fleet().Nodes {
				hosts = append(hosts, n.Address())
			}
			var next, bytes atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					host := hosts[next.Add(1)%int64(len(hosts))]
					req, _ := http.NewRequest(http.MethodGet, "https://"+s.Addr()+"/metrics/cadvisor", nil)
					req.Host = host
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || n == 0 {
						b.Errorf("%s: %d, %d bytes", host, resp.StatusCode, n)
						return
					}
					bytes.Add(n)
				}
			})
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "scrapes/s")
			b.ReportMetric(float64(bytes.Load())/sec/1e6, "MB/s")
			b.ReportMetric(float64(bytes.Load())/float64(b.N), "bytes/scrape")
		})
	}
}

// BenchmarkRender is edgesim's own cost per body, without the transport: one node's body per op.
func BenchmarkRender(b *testing.B) {
	s, err := New(Config{Nodes: 1000, Seed: 1, Listen: "127.0.0.1:0", TLSDir: b.TempDir(), FixturesDir: fixturesDir(b), ManualStep: true})
	if err != nil {
		b.Fatal(err)
	}
	for ep, path := range endpointPaths {
		b.Run(path, func(b *testing.B) {
			var buf []byte
			var total int64
			for i := 0; i < b.N; i++ {
				buf = s.render(buf[:0], i%1000, ep, int64(i/1000))
				total += int64(len(buf))
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "renders/s")
			b.ReportMetric(float64(total)/sec/1e6, "MB/s")
		})
	}
}
