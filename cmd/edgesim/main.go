// Command edgesim runs a simulated KubeEdge fleet: a cloudcore-compatible TLS stream endpoint in
// front of N edge nodes serving kubelet metrics made from real captures, with fault injection
// through flags and a loopback admin API. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stderr, nil), os.Stderr))
}

// exitCode is 0 for a clean stop and for -h (the usage is already printed), else 1 with the error.
func exitCode(err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(w, "edgesim:", err)
	return 1
}

// options are the parsed flags.
type options struct {
	cfg             edgesim.Config
	disconnect      string
	disconnectSites string
	tunnelClosed    string
	statsEvery      time.Duration
	disconnectF     float64
	latency         time.Duration
	errorRate       float64
	slowBody        string
	slowBodyFor     time.Duration
	malformed       string
	explode         string
	explodeCount    int
	logLevel        string
	kube            kubeOptions
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("edgesim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.cfg.Nodes, "nodes", 100, "number of edge nodes (1..10000)")
	fs.Int64Var(&o.cfg.Seed, "seed", 1, "seed of the fleet: names, labels, pods and values follow from it")
	fs.StringVar(&o.cfg.Listen, "listen", "127.0.0.1:10003", "cloudcore-compatible TLS stream endpoint")
	fs.IntVar(&o.cfg.Cloudcores, "cloudcores", 1, "cloudcore replicas (1..8): the first on -listen, the others on its host with ports of their own; node i's tunnel starts on replica i mod n")
	fs.StringVar(&o.cfg.AdminListen, "admin-listen", "127.0.0.1:10090", "loopback admin HTTP API; empty disables it")
	fs.StringVar(&o.cfg.FleetFile, "fleet-file", "", "write the fleet (name, IP, port, labels, direct address) to this JSON file")
	fs.StringVar(&o.cfg.TLSDir, "tls-dir", "", "directory of ca.crt, server.crt/key, client.crt/key: generated when empty of them, else read (default: edgesim/tls in the user's cache directory)")
	fs.BoolVar(&o.cfg.RequireClientCert, "require-client-cert", false, "reject clients without a certificate signed by the CA (cloudcore does not)")
	fs.BoolVar(&o.cfg.Direct, "direct", false, "also serve each node's kubelet endpoints over plain HTTP on its own loopback port")
	fs.StringVar(&o.cfg.CapturesDir, "captures", "", "directory of kubelet captures of your own, or its parent holding kubelet/ (default: $EDGETEL_FIXTURES, else the embedded captures)")
	fs.IntVar(&o.cfg.KubeletPort, "kubelet-port", kube.DefaultKubeletPort, "the nodes' kubelet endpoint port, as published in the fleet and expected in Host")
	fs.DurationVar(&o.cfg.Step, "step", 15*time.Second, "how often values advance (counters grow, gauges move, pods churn)")
	fs.Int64Var(&o.cfg.CacheBytes, "cache-bytes", 64<<20, "bytes of rendered bodies kept for reuse within a step; negative disables")
	fs.IntVar(&o.cfg.Logs.PodsPerNode, "log-pods", 0, "pods per node whose containers write numbered log lines (0..20; served at /containerLogs)")
	fs.IntVar(&o.cfg.Logs.ContainersPerPod, "log-containers", 2, "containers per log pod (1..10)")
	fs.Float64Var(&o.cfg.Logs.Rate, "log-rate", 5, "log lines per second per container")
	fs.IntVar(&o.cfg.Logs.Burst, "log-burst", 1, "log lines sharing one timestamp")
	fs.IntVar(&o.cfg.Logs.StderrEvery, "log-stderr-every", 0, "every n-th log line goes to stderr; 0: none")
	fs.StringVar(&o.cfg.Logs.Namespace, "log-namespace", "edge-apps", "namespace of the log pods")
	fs.StringVar(&o.disconnect, "disconnect", "", "comma-separated nodes started without a tunnel session")
	fs.StringVar(&o.disconnectSites, "disconnect-site", "", "comma-separated sites (topology.kubernetes.io/zone) whose nodes all start without a tunnel session")
	fs.StringVar(&o.tunnelClosed, "tunnel-closed", "", "comma-separated nodes whose session stays but whose tunnel is closed (200, empty body)")
	fs.DurationVar(&o.statsEvery, "log-stats", 30*time.Second, "log what was served this often; 0 disables")
	fs.Float64Var(&o.disconnectF, "disconnect-fraction", 0, "share of the fleet (0..1) started without a tunnel session")
	fs.DurationVar(&o.latency, "latency", 0, "delay of every edge answer")
	fs.Float64Var(&o.errorRate, "error-rate", 0, "share (0..1) of edge answers that fail mid-body")
	fs.StringVar(&o.slowBody, "slow-body", "", "comma-separated nodes whose bodies are dribbled out over --slow-body-duration")
	fs.DurationVar(&o.slowBodyFor, "slow-body-duration", 10*time.Second, "how long a slow body takes")
	fs.StringVar(&o.malformed, "malformed", "", "comma-separated nodes that serve exposition Prometheus' parser rejects")
	fs.StringVar(&o.explode, "explode", "", "comma-separated nodes with a series explosion of --explode-series extra series")
	fs.IntVar(&o.explodeCount, "explode-series", 10000, "extra unique series per exploding node")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.kube.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.cfg.TLSDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("--tls-dir not given and no cache directory for a default: %w", err)
		}
		o.cfg.TLSDir = filepath.Join(dir, "edgesim", "tls")
	}
	if o.disconnectF < 0 || o.disconnectF > 1 {
		return nil, fmt.Errorf("--disconnect-fraction %v: want 0..1", o.disconnectF)
	}
	if o.errorRate < 0 || o.errorRate > 1 {
		return nil, fmt.Errorf("--error-rate %v: want 0..1", o.errorRate)
	}
	if o.latency < 0 || o.slowBodyFor < 0 || o.statsEvery < 0 {
		return nil, errors.New("--latency, --slow-body-duration and --log-stats must not be negative")
	}
	if o.explodeCount < 0 {
		return nil, fmt.Errorf("--explode-series %d: want >= 0", o.explodeCount)
	}
	return o, nil
}

func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// run starts the simulator and serves until ctx ends or SIGINT/SIGTERM arrives. ready, when not
// nil, receives the running simulator (tests).
func run(ctx context.Context, args []string, logOut io.Writer, ready chan<- *edgesim.Sim) error {
	o, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	o.cfg.Logger = log
	sim, err := edgesim.New(o.cfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	if err := applyFaults(sim, o); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sim.Start(ctx); err != nil {
		return err
	}
	f := sim.TLSFiles()
	log.Info("cloudcore stream endpoint", "addr", sim.Addr(), "replicas", sim.Addrs(), "ca", f.CAFile, "client_cert", f.ClientCertFile, "client_key", f.ClientKeyFile)
	log.Info("routes", "paths", "/metrics /metrics/cadvisor /metrics/resource /metrics/probes /stats/summary",
		"select_node_by", "Host: <node IP or name>[:port] or X-Forwarded-Uri: /api/v1/nodes/<name>/proxy/<path>")
	regDone, err := o.kube.start(ctx, sim, log)
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- sim
	}
	logStats(ctx, sim, log, o.statsEvery)
	<-regDone
	log.Info("stopping", "served", sim.Stats())
	return sim.Close()
}

// logStats logs the served counters every interval while they change, until ctx ends.
func logStats(ctx context.Context, sim *edgesim.Sim, log *slog.Logger, every time.Duration) {
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last edgesim.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if st := sim.Stats(); st != last {
				log.Info("served", "bodies", st.Bodies, "bytes", st.Bytes, "no_session_500", st.NoSession,
					"not_routed_404", st.NotRouted, "truncated", st.Truncated, "step", sim.Step())
				last = st
			}
		}
	}
}

func applyFaults(sim *edgesim.Sim, o *options) error {
	for _, names := range []string{o.disconnect, o.tunnelClosed, o.slowBody, o.malformed, o.explode} {
		if bad := sim.Unknown(list(names)...); len(bad) > 0 {
			return fmt.Errorf("unknown nodes %q", bad)
		}
	}
	if names := list(o.disconnect); len(names) > 0 {
		sim.Disconnect(names...)
	}
	for _, site := range list(o.disconnectSites) {
		names := sim.SiteNodes(site)
		if len(names) == 0 {
			return fmt.Errorf("--disconnect-site: no node of the fleet is in site %q", site)
		}
		sim.Disconnect(names...)
	}
	if o.disconnectF > 0 {
		sim.DisconnectFraction(o.disconnectF)
	}
	for _, n := range list(o.tunnelClosed) {
		sim.SetTunnelClosed(n, true)
	}
	if o.latency > 0 {
		sim.SetLatency(o.latency)
	}
	if o.errorRate > 0 {
		sim.SetErrorRate(o.errorRate)
	}
	for _, n := range list(o.slowBody) {
		sim.SetSlowBody(n, o.slowBodyFor)
	}
	for _, n := range list(o.malformed) {
		sim.SetMalformed(n, true)
	}
	for _, n := range list(o.explode) {
		sim.SetExplosion(n, o.explodeCount)
	}
	return nil
}
