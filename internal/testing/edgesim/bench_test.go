package edgesim

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// BenchmarkCadvisorScrape scrapes /metrics/cadvisor round-robin over a fleet through the
// cloudcore endpoint, with a keep-alive TLS client in the same process, and reports scrapes/s,
// body MB/s and bytes per scrape:
//
//   - hot: 100 nodes, whose bodies all fit the cache: serving is writing cached bytes;
//   - fleet: 1,000 nodes (1.3 GB of bodies, more than the default cache): most scrapes render;
//   - render: the cache off, every scrape renders its body from the templates;
//   - static: the transport floor: hot's 100 bodies, pre-rendered, served by a bare net/http
//     handler with the same TLS configuration. edgesim cannot beat it; the gap is its own cost.
func BenchmarkCadvisorScrape(b *testing.B) {
	for _, bc := range []struct {
		name  string
		nodes int
		cache int64
	}{{"hot", 100, 0}, {"fleet", 1000, 0}, {"render", 1000, -1}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startSim(b, Config{Nodes: bc.nodes, Seed: 1, ManualStep: true, CacheBytes: bc.cache})
			hosts := make([]string, 0, bc.nodes)
			for _, n := range s.Fleet().Nodes {
				hosts = append(hosts, n.Address())
			}
			scrape(b, client(b, s, false), s.Addr(), hosts)
		})
	}
	b.Run("static", func(b *testing.B) {
		s := startSim(b, Config{Nodes: 100, Seed: 1, ManualStep: true})
		bodies := map[string][]byte{}
		var hosts []string
		for _, n := range s.Fleet().Nodes {
			bodies[n.Address()] = s.Expected(n.Name, "/metrics/cadvisor")
			hosts = append(hosts, n.Address())
		}
		cfg, err := s.TLSFiles().ServerConfig(false)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(bodies[r.Host]) }), TLSConfig: cfg}
		go srv.ServeTLS(ln, "", "")
		defer srv.Close()
		scrape(b, client(b, s, false), ln.Addr().String(), hosts)
	})
}

func scrape(b *testing.B, c *http.Client, addr string, hosts []string) {
	var next, bytes atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			host := hosts[next.Add(1)%int64(len(hosts))]
			req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics/cadvisor", nil)
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
}

// BenchmarkRender is edgesim's own cost per body, without the transport: one node's body per op.
func BenchmarkRender(b *testing.B) {
	s, err := New(Config{Nodes: 1000, Seed: 1, Listen: "127.0.0.1:0", TLSDir: b.TempDir(), ManualStep: true})
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

// BenchmarkParseCadvisor is what a scraper pays for the same body with Prometheus' text parser:
// the yardstick for "edgesim is never the bottleneck".
func BenchmarkParseCadvisor(b *testing.B) {
	s, err := New(Config{Nodes: 1, Seed: 1, Listen: "127.0.0.1:0", TLSDir: b.TempDir(), ManualStep: true})
	if err != nil {
		b.Fatal(err)
	}
	body := s.Expected("edge-00001", "/metrics/cadvisor")
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := parseText(body); err != nil {
			b.Fatal(err)
		}
	}
}
