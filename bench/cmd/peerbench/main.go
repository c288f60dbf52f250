// Command peerbench puts edgetelcol and its peers (Prometheus agent, vmagent, the upstream
// Collector) side by side on one simulated KubeEdge fleet and one counting remote-write sink,
// plus a floor that only fetches, and prints (and optionally writes) the table.
//
//	go run ./bench/cmd/peerbench -nodes 1000 -duration 2m -out BENCHMARKS.md
//	go run ./bench/cmd/peerbench -outage 10m -nodes 1000      # the outage benchmark
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/edgetel/edgetel/bench/harness"
)

type options struct {
	nodes                  int
	duration, warmup       time.Duration
	interval               time.Duration
	outage, live           time.Duration
	bin, captures, workDir string
	systems, sigkill       string
	out, profileDir        string
	baseline, memoryLimit  string
	keep                   bool
	bufferBytes            int64
	command                string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		if err := runFloor(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated edge nodes")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "measurement window per system")
	flag.DurationVar(&o.warmup, "warmup", 45*time.Second, "time each system runs before the window")
	flag.DurationVar(&o.interval, "interval", 15*time.Second, "scrape interval of every system")
	flag.DurationVar(&o.outage, "outage", 0, "run the outage benchmark with a sink outage this long instead of the throughput table")
	flag.DurationVar(&o.live, "live", 0, "outage runs: the window before the outage in which the live rate and the system's own delivery lag are measured (default: 3 minutes)")
	flag.StringVar(&o.sigkill, "sigkill", "both", "outage runs: run each system without a SIGKILL (no), with one mid-outage (yes), or both")
	flag.Int64Var(&o.bufferBytes, "buffer-bytes", 0, "edgetelcol's buffer.max_bytes (0: the exporter's default, 1 GiB); an outage run needs room for the whole outage")
	flag.StringVar(&o.bin, "bin", "bin", "directory with prometheus, vmagent, otelcol-upstream, edgetelcol")
	flag.StringVar(&o.captures, "captures", "", "directory of kubelet captures of your own (default: the embedded ones, or $EDGETEL_FIXTURES)")
	flag.StringVar(&o.workDir, "workdir", "", "scratch directory (default: a new temp dir, removed unless -keep)")
	flag.StringVar(&o.systems, "systems", "edgetelcol-direct,edgetelcol-cloudcore,edgetelcol-chart,prometheus-agent,vmagent,otelcol-upstream,floor", "systems to run, in order")
	flag.StringVar(&o.out, "out", "", "write the results into this Markdown file (BENCHMARKS.md), between the benchmark markers")
	flag.StringVar(&o.profileDir, "profiles", "", "save a CPU profile (during the window) and a heap profile (at its end) of each system serving pprof here")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory (configs, logs, data)")
	flag.StringVar(&o.baseline, "baseline", "edgetelcol-direct", "throughput table: the system the ratios are to")
	flag.StringVar(&o.memoryLimit, "memory-limit", "", "edgetelcol-chart: the pod's memory limit (e.g. 4Gi); it runs with the GOMEMLIMIT and memory_limiter the chart renders for it")
	flag.Parse()
	o.command = "go run ./bench/cmd/peerbench " + strings.Join(os.Args[1:], " ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir := o.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "peerbench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	if o.sigkill != "yes" && o.sigkill != "no" && o.sigkill != "both" {
		return fmt.Errorf("-sigkill %q: want yes, no or both", o.sigkill)
	}
	systems, err := selectSystems(o)
	if err != nil {
		return err
	}
	cfg := harness.EnvConfig{Dir: dir, Nodes: o.nodes, Interval: o.interval, CapturesDir: o.captures, SinkPairs: true}
	env, err := harness.NewEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Fprintf(os.Stderr, "edgesim: %d nodes; sink %s; scratch %s\n", o.nodes, env.Sink.URL(), dir)
	var report bytes.Buffer
	if o.outage > 0 {
		err = runOutage(ctx, o, env, systems, &report)
	} else {
		err = runThroughput(ctx, o, env, systems, &report)
	}
	if err != nil {
		return err
	}
	os.Stdout.Write(report.Bytes())
	if o.out != "" {
		return writeReport(o, report.String())
	}
	return nil
}

// selectSystems resolves -systems against the binaries in -bin; a missing binary is an error, so
// a table never silently lacks a peer.
func selectSystems(o options) ([]harness.System, error) {
	bin := func(name string) (string, error) {
		p, err := filepath.Abs(filepath.Join(o.bin, name))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not installed (bench/install.sh, go build -o bin/edgetelcol ./cmd/edgetelcol): %w", name, err)
		}
		return p, nil
	}
	var out []harness.System
	var errs []error
	for _, name := range strings.Split(o.systems, ",") {
		var s harness.System
		var p string
		var err error
		switch name {
		case "edgetelcol-direct", "edgetelcol-cloudcore":
			p, err = bin("edgetelcol")
			s = harness.Edgetelcol(p, strings.TrimPrefix(name, "edgetelcol-"), o.bufferBytes)
		case "edgetelcol-chart":
			var helm string
			if helm, err = bin("helm"); err == nil {
				p, err = bin("edgetelcol")
				s = harness.EdgetelcolChart(p, helm, o.memoryLimit)
			}
		case "prometheus-agent":
			p, err = bin("prometheus")
			s = harness.PrometheusAgent(p)
		case "vmagent":
			p, err = bin("vmagent")
			s = harness.VMAgent(p)
		case "otelcol-upstream":
			p, err = bin("otelcol-upstream")
			s = harness.Otelcol(p, o.outage > 0)
		case "floor":
			s = harness.System{Name: "floor"}
		default:
			err = fmt.Errorf("unknown system %q", name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

func runThroughput(ctx context.Context, o options, env *harness.Env, systems []harness.System, w io.Writer) error {
	var rows []harness.Row
	for _, s := range systems {
		fmt.Fprintf(os.Stderr, "%s: warm-up %v, window %v\n", s.Name, o.warmup, o.duration)
		var row harness.Row
		var err error
		if s.Name == "floor" {
			row, err = env.MeasureFloor(ctx, selfPath(), []string{"floor", "-targets", env.TargetsFile, "-interval", o.interval.String()}, o.warmup, o.duration)
		} else {
			profile := ""
			if o.profileDir != "" {
				os.MkdirAll(o.profileDir, 0o755)
				profile = filepath.Join(o.profileDir, s.Name+".cpu.pprof")
			}
			row, err = env.Measure(ctx, s, o.warmup, o.duration, profile)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			row = harness.Row{System: s.Name, Lost: -1, Note: "failed: " + err.Error()}
		}
		fmt.Fprintf(os.Stderr, "  %.0f samples/s, %.2f CPU s per 1M, peak RSS %d MiB, %d series, served %d, lost %d %s\n",
			row.SamplesPerSec, row.CPUPerMillion, row.PeakRSS>>20, row.Series, row.Served, row.Lost, row.Note)
		rows = append(rows, row)
		sleepBetween(ctx)
	}
	fmt.Fprintf(w, "%d nodes, scrape interval %v, warm-up %v, window %v per system, one run (%s).\n"+
		"Ratios in parentheses are to %s. Loss is exact, from each system's start to the end of its window: edgesim stops serving, and the (series, timestamp) pairs it served are set against the distinct ones delivered (edgetelcol-chart: held in its TSDB once it stopped).\n\n", o.nodes, o.interval, o.warmup, o.duration, time.Now().UTC().Format("2006-01-02 15:04 UTC"), o.baseline)
	harness.Table(w, rows, o.baseline)
	return nil
}

func runOutage(ctx context.Context, o options, env *harness.Env, systems []harness.System, w io.Writer) error {
	var rows []harness.OutageRow
	live := cmp.Or(o.live, 3*time.Minute)
	for _, s := range systems {
		if s.Name == "floor" {
			continue
		}
		for _, kill := range kills(o.sigkill) {
			fmt.Fprintf(os.Stderr, "%s: outage %v, SIGKILL %v\n", s.Name, o.outage, kill)
			row, err := env.Outage(ctx, s, harness.OutageConfig{Warmup: o.warmup, Live: live, Outage: o.outage,
				Kill: kill, DrainTimeout: o.outage + 5*time.Minute})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				row.Note = "failed: " + err.Error()
			}
			fmt.Fprintf(os.Stderr, "  live %.0f samples/s, served %d, lost %d, backlog %d, disk %d MiB, drain %.0f s %s\n", row.LiveRate, row.Served, row.Lost, row.Backlog, row.DiskPeak>>20, row.Drain, row.Note)
			rows = append(rows, row)
			sleepBetween(ctx)
		}
	}
	fmt.Fprintf(w, "%d nodes, scrape interval %v, sink answering 503 for %v, live window %v, one run (%s).\n"+
		"Loss is exact: edgesim stops serving at the end, and the (series, timestamp) pairs it served are set against the distinct ones delivered.\n\n",
		o.nodes, o.interval, o.outage, live, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	harness.OutageTable(w, rows)
	return nil
}

// kills are the outage variants to run: without a SIGKILL, with one, or both.
func kills(sigkill string) []bool {
	switch sigkill {
	case "yes":
		return []bool{true}
	case "no":
		return []bool{false}
	}
	return []bool{false, true}
}

// sleepBetween lets the previous system's connections and CPU settle before the next one starts.
func sleepBetween(ctx context.Context) {
	select {
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
}

func selfPath() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

// writeReport replaces the section between <!-- peerbench:KIND:begin --> and its end marker in
// o.out with the report, the command and the machine.
func writeReport(o options, report string) error {
	kind := "throughput"
	if o.outage > 0 {
		kind = "outage"
	}
	begin, end := "<!-- peerbench:"+kind+":begin -->", "<!-- peerbench:"+kind+":end -->"
	data, err := os.ReadFile(o.out)
	if err != nil {
		return fmt.Errorf("reading %s: %w", o.out, err)
	}
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s section", o.out, begin, end)
	}
	section := fmt.Sprintf("%s\nCommand: `%s`\n\nMachine: %s\n\n%s%s", begin, o.command, machine(), report, end)
	out := append(append(append([]byte{}, data[:i]...), section...), data[j+len(end):]...)
	return os.WriteFile(o.out, out, 0o644)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average at the end " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	out, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s%s", runtime.NumCPU(), model, strings.TrimSpace(string(out)), runtime.Version(), load)
}
