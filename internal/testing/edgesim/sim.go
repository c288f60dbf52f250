// Package edgesim simulates a KubeEdge edge fleet as a metrics scraper sees it: one
// cloudcore-compatible stream endpoint (TLS) in front of N edge nodes whose kubelet endpoints are
// rendered from real kubelet captures, an optional per-node direct endpoint (the edge-side view),
// fault injection and a loopback admin API.
//
// Bodies are rendered from templates shared by all nodes: a node is a few numbers (seed hash,
// pod count, scale) and its pods are derived from (node, slot, generation), so memory does not
// grow with the fleet beyond a bounded cache of rendered bodies. Values change once per step
// (Config.Step), never per request.
package edgesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

// MaxNodes is the largest fleet edgesim simulates.
const MaxNodes = 10000

// Config configures a simulated fleet.
type Config struct {
	Nodes  int    // 1..10000
	Seed   int64  // deterministic fleet for a given seed
	Listen string // cloudcore-compatible TLS stream endpoint, e.g. "127.0.0.1:0"
	// Cloudcores is how many cloudcore replicas (HA) serve the fleet, default 1. The first listens
	// on Listen, the others on Listen's host with a port of their own; node i's tunnel starts on
	// replica i mod Cloudcores and moves with MoveTunnel.
	Cloudcores        int
	AdminListen       string // loopback admin HTTP API; "" = none
	TLSDir            string // ca.crt, server.crt, server.key, client.crt, client.key written here, or read if present
	RequireClientCert bool   // off by default: cloudcore asks for one but never requires it (docs/kubeedge.md §2.3)
	Direct            bool   // also serve each node on its own loopback address/port (edge-side view)
	FleetFile         string // written with fleet.Save; "" = none
	KubeletPort       int    // default kube.DefaultKubeletPort
	CapturesDir       string // kubelet captures of one's own; empty: the embedded ones (internal/testing/edgesim/captures)

	// Step is how often values advance (counters grow, gauges move, pods come and go); default 15s.
	Step time.Duration
	// ManualStep freezes time: values only advance through Advance (tests).
	ManualStep bool
	// CacheBytes bounds the rendered bodies kept for reuse within a step; default 64 MiB, <0 = none.
	// Rendering costs far less than TLS (BenchmarkRender), so a bigger cache only helps a small
	// fleet scraped repeatedly within a step, and costs memory.
	CacheBytes int64
	// Logger receives what edgesim serves and its faults; default discards.
	Logger *slog.Logger
	// Logs gives nodes pods whose containers write numbered lines (logs.go); none by default.
	Logs LogsConfig
}

// Endpoints a node serves.
const (
	epMetrics = iota
	epCadvisor
	epResource
	epSummary
	epProbes
	numEndpoints
)

var endpointPaths = [numEndpoints]string{"/metrics", "/metrics/cadvisor", "/metrics/resource", "/stats/summary", "/metrics/probes"}

// simNode is a node: everything else about it is derived on demand.
type simNode struct {
	name  []byte
	hash  uint64
	pods  int
	scale float64
	age   int64 // steps the node had been up at step 0
}

// Sim is a running simulated fleet.
type Sim struct {
	cfg   Config
	log   *slog.Logger
	tmpl  *templates
	nodes []simNode
	byKey map[string]int // node name and IP → node
	fleet fleet.File
	files tlsutil.Files

	start      time.Time
	manualStep atomic.Int64

	faults faults
	stats  counters
	served served
	cache  bodyCache
	pool   sync.Pool

	done    chan struct{}
	mu      sync.Mutex
	servers []*http.Server
	ln      net.Listener   // the first cloudcore's
	lns     []net.Listener // every cloudcore's, ln first
	adminLn net.Listener
	wg      sync.WaitGroup
	closed  bool
}

// New validates cfg, loads the captures, builds the fleet and the TLS files. It does not listen.
func New(cfg Config) (*Sim, error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("edgesim: nodes must be 1..%d, got %d", MaxNodes, cfg.Nodes)
	}
	if cfg.Listen == "" {
		return nil, errors.New("edgesim: listen address is empty")
	}
	if cfg.AdminListen != "" {
		if err := checkLoopback(cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("edgesim: %w", err)
		}
	}
	if cfg.TLSDir == "" {
		return nil, errors.New("edgesim: tls dir is empty")
	}
	if cfg.KubeletPort == 0 {
		cfg.KubeletPort = kube.DefaultKubeletPort
	}
	if cfg.KubeletPort < 1 || cfg.KubeletPort > 65535 {
		return nil, fmt.Errorf("edgesim: kubelet port %d out of range", cfg.KubeletPort)
	}
	if cfg.Cloudcores == 0 {
		cfg.Cloudcores = 1
	}
	if cfg.Cloudcores < 1 || cfg.Cloudcores > maxCloudcores {
		return nil, fmt.Errorf("edgesim: cloudcores must be 1..%d, got %d", maxCloudcores, cfg.Cloudcores)
	}
	if cfg.Step == 0 {
		cfg.Step = 15 * time.Second
	}
	if cfg.Step < 0 {
		return nil, fmt.Errorf("edgesim: step %v is negative", cfg.Step)
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Logs.setDefaults(); err != nil {
		return nil, fmt.Errorf("edgesim: %w", err)
	}
	tmpl, err := loadTemplates(cfg.CapturesDir)
	if err != nil {
		return nil, fmt.Errorf("edgesim: %w", err)
	}
	files, err := tlsutil.Ensure(cfg.TLSDir, tlsutil.Options{CommonName: "edgesim-ca"})
	if err != nil {
		return nil, fmt.Errorf("edgesim: %w", err)
	}
	s := &Sim{
		cfg:   cfg,
		log:   cfg.Logger,
		tmpl:  tmpl,
		files: files,
		start: time.Now().Truncate(time.Second),
		done:  make(chan struct{}),
		byKey: make(map[string]int, 2*cfg.Nodes),
	}
	s.buildFleet()
	s.faults.init(cfg.Nodes, cfg.Cloudcores)
	s.cache.init(cfg.Nodes*numEndpoints, cfg.CacheBytes)
	s.served.init(cfg.Nodes)
	return s, nil
}

var regions = []string{"eu-west", "eu-north", "us-east", "ap-south"}

// buildFleet derives names, IPs and labels from the seed.
func (s *Sim) buildFleet() {
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0xed9e))
	s.nodes = make([]simNode, s.cfg.Nodes)
	s.fleet.Nodes = make([]fleet.Node, s.cfg.Nodes)
	for i := range s.nodes {
		name := fmt.Sprintf("edge-%05d", i+1)
		// 10.128.0.0/9, skipping .0 and .255 host octets: names only, never dialed.
		ip := fmt.Sprintf("10.%d.%d.%d", 128+i/254/256, i/254%256, i%254+1)
		region := regions[rng.IntN(len(regions))]
		site := fmt.Sprintf("%s-site-%02d", region, rng.IntN(8)+1)
		group := fmt.Sprintf("ng-%s-%c", site, 'a'+rng.IntN(2))
		h := mix(uint64(s.cfg.Seed), uint64(i))
		s.nodes[i] = simNode{
			name:  []byte(name),
			hash:  h,
			pods:  3 + int(mix(h, 1)%28),
			scale: 0.6 + 0.8*unit(mix(h, 2)),
			age:   1000 + int64(mix(h, 3)%100000),
		}
		s.fleet.Nodes[i] = fleet.Node{
			Name: name,
			IP:   ip,
			Port: s.cfg.KubeletPort,
			Labels: map[string]string{
				kube.LabelEdgeRole:  "",
				kube.LabelRegion:    region,
				kube.LabelSite:      site,
				kube.LabelNodeGroup: group,
			},
		}
		s.byKey[name] = i
		s.byKey[ip] = i
		s.fleet.Nodes[i].Pods = s.logPods(i)
	}
}

// Start listens on every configured address and serves until Close or ctx ends.
func (s *Sim) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("edgesim: closed")
	}
	if s.ln != nil {
		return errors.New("edgesim: already started")
	}
	tlsCfg, err := s.files.ServerConfig(s.cfg.RequireClientCert)
	if err != nil {
		return fmt.Errorf("edgesim: %w", err)
	}
	if err := s.listenCloudcores(tlsCfg); err != nil {
		s.shutdownLocked()
		return err
	}
	if s.cfg.Direct {
		if err := s.startDirect(); err != nil {
			s.shutdownLocked()
			return err
		}
	}
	if s.cfg.AdminListen != "" {
		if err := s.startAdmin(); err != nil {
			s.shutdownLocked()
			return err
		}
	}
	if s.cfg.FleetFile != "" {
		if err := fleet.Save(s.cfg.FleetFile, s.fleetLocked()); err != nil {
			s.shutdownLocked()
			return fmt.Errorf("edgesim: %w", err)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.shutdown() // not Close: it would wait for this goroutine
		case <-s.done:
		}
	}()
	s.log.Info("edgesim serving", "nodes", len(s.nodes), "cloudcores", s.addrsLocked(), "admin", s.AdminAddrLocked(),
		"direct", s.cfg.Direct, "fleet_file", s.cfg.FleetFile, "tls_dir", s.cfg.TLSDir, "require_client_cert", s.cfg.RequireClientCert)
	return nil
}

// maxCloudcores bounds the replicas: a node's sessions are a bit mask.
const maxCloudcores = 8

// listenCloudcores starts every cloudcore replica's stream server.
func (s *Sim) listenCloudcores(tlsCfg *tls.Config) error {
	addr := s.cfg.Listen
	for cc := range s.cfg.Cloudcores {
		if cc > 0 {
			host, _, err := net.SplitHostPort(s.cfg.Listen)
			if err != nil {
				return fmt.Errorf("edgesim: listen address %s: %w", s.cfg.Listen, err)
			}
			addr = net.JoinHostPort(host, "0")
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("edgesim: listening on %s: %w", addr, err)
		}
		if cc == 0 {
			s.ln = ln
		}
		s.lns = append(s.lns, ln)
		stream := &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, cc) }),
			TLSConfig:         tlsCfg.Clone(), // each server adds its ALPN protocols to its own
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		s.serve(stream, func() error { return stream.ServeTLS(ln, "", "") })
	}
	return nil
}

func (s *Sim) serve(srv *http.Server, run func() error) {
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("edgesim server stopped", "err", err)
		}
	}()
}

// Close stops every server and waits for their goroutines. Safe without Start and twice.
func (s *Sim) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

func (s *Sim) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.shutdownLocked()
	}
}

func (s *Sim) shutdownLocked() {
	s.closed = true
	for _, srv := range s.servers {
		srv.Close()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	close(s.done)
}

// Addr is host:port of the cloudcore endpoint ("" before Start).
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

func (s *Sim) addrsLocked() []string {
	out := make([]string, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// Addrs are host:port of every cloudcore replica, the first being Addr (nil before Start).
func (s *Sim) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrsLocked()
}

// AdminAddr is host:port of the admin API ("" when none).
func (s *Sim) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.AdminAddrLocked()
}

// AdminAddrLocked is AdminAddr for callers holding s.mu.
func (s *Sim) AdminAddrLocked() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Fleet is the fleet as discovery sees it; with Direct on (and started) each node has its address.
func (s *Sim) Fleet() fleet.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fleetLocked()
}

func (s *Sim) fleetLocked() fleet.File {
	out := fleet.File{Nodes: make([]fleet.Node, len(s.fleet.Nodes))}
	for i, n := range s.fleet.Nodes {
		labels := make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			labels[k] = v
		}
		n.Labels = labels
		out.Nodes[i] = n
	}
	return out
}

// TLSFiles are the CA, server and client certificate files.
func (s *Sim) TLSFiles() tlsutil.Files { return s.files }

// counters are what edgesim has served.
type counters struct {
	bodies, bytes, noSession, notRouted, truncated atomic.Int64
	staleSession, hung, longLine                   atomic.Int64
}

// Stats counts what edgesim has served since New.
type Stats struct {
	Bodies    int64 `json:"bodies"`     // full bodies sent (through cloudcore or directly)
	Bytes     int64 `json:"bytes"`      // their bytes
	NoSession int64 `json:"no_session"` // 500s for unknown or disconnected nodes
	NotRouted int64 `json:"not_routed"` // 404s for paths cloudcore does not route
	Truncated int64 `json:"truncated"`  // answers cut by the error rate, a closed tunnel or a long line
	// StaleSession counts empty 200s from a cloudcore holding a closed session (tunnel moved).
	StaleSession int64 `json:"stale_session"`
	// Hung counts requests held without an answer because the node's kubelet is down.
	Hung int64 `json:"hung"`
	// LongLine counts bodies cut at a line over the edge's 64 KiB scanner limit.
	LongLine int64 `json:"long_line"`
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	return Stats{
		Bodies:    s.stats.bodies.Load(),
		Bytes:     s.stats.bytes.Load(),
		NoSession: s.stats.noSession.Load(),
		NotRouted: s.stats.notRouted.Load(),
		Truncated: s.stats.truncated.Load(),

		StaleSession: s.stats.staleSession.Load(),
		Hung:         s.stats.hung.Load(),
		LongLine:     s.stats.longLine.Load(),
	}
}

// Step is the current simulation step.
func (s *Sim) Step() int64 {
	st := s.manualStep.Load()
	if !s.cfg.ManualStep {
		st += int64(time.Since(s.start) / s.cfg.Step)
	}
	return st
}

// Advance moves the simulation n steps forward (the clock keeps running unless ManualStep).
func (s *Sim) Advance(n int) { s.manualStep.Add(int64(n)) }

// stepTime is the wall clock of a step, in milliseconds.
func (s *Sim) stepTime(step int64) int64 {
	return s.start.UnixMilli() + step*s.cfg.Step.Milliseconds()
}

func (s *Sim) nodeName(i int) string { return string(s.nodes[i].name) }
