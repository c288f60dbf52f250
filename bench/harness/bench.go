package harness

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
)

// Env is a running simulated fleet and sink that systems are measured against.
type Env struct {
	Dir         string
	Sim         *edgesim.Sim
	Sink        *Sink
	FleetFile   string
	TargetsFile string
	Interval    time.Duration
	Timeout     time.Duration
}

// EnvConfig configures NewEnv.
type EnvConfig struct {
	Dir         string
	Nodes       int
	Interval    time.Duration
	CapturesDir string
	SinkPairs   bool          // keep every series' timestamps in the sink (exact delivered counts)
	Step        time.Duration // how often edgesim's values and timestamps move (default Interval)
}

// NewEnv starts edgesim (direct mode and its cloudcore endpoint) and the sink.
func NewEnv(ctx context.Context, c EnvConfig) (*Env, error) {
	e := &Env{Dir: c.Dir, Interval: c.Interval, Timeout: max(min(c.Interval*2/3, 10*time.Second).Truncate(time.Second), time.Second),
		FleetFile: filepath.Join(c.Dir, "fleet.json"), TargetsFile: filepath.Join(c.Dir, "targets.json")}
	sim, err := edgesim.New(edgesim.Config{Nodes: c.Nodes, Seed: 1, Listen: "127.0.0.1:0", TLSDir: filepath.Join(c.Dir, "tls"),
		Direct: true, FleetFile: e.FleetFile, CapturesDir: c.CapturesDir, Step: cmp.Or(c.Step, c.Interval),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, fmt.Errorf("edgesim: %w", err)
	}
	if err := sim.Start(ctx); err != nil {
		return nil, fmt.Errorf("edgesim: %w", err)
	}
	e.Sim = sim
	if err := WriteTargets(e.TargetsFile, sim.Fleet()); err != nil {
		sim.Close()
		return nil, err
	}
	if e.Sink, err = NewSink("", c.SinkPairs); err != nil {
		sim.Close()
		return nil, err
	}
	return e, nil
}

// Close stops the sink and edgesim.
func (e *Env) Close() {
	e.Sink.Close()
	e.Sim.Close()
}

// Params are the configuration parameters of system s in this environment.
func (e *Env) Params(s System) (peers.Params, error) {
	p := peers.Params{Interval: e.Interval, Timeout: e.Timeout, TargetsFile: e.TargetsFile, FleetFile: e.FleetFile,
		SinkURL: e.Sink.URL(), DataDir: filepath.Join(e.Dir, s.Name, "data"), CloudcoreAddr: e.Sim.Addr(),
		CAFile: e.Sim.TLSFiles().CAFile}
	if s.Pprof {
		addr, err := FreeAddr()
		if err != nil {
			return p, err
		}
		p.PprofAddr = addr
	}
	if s.TSDB != "" {
		port, err := freePort()
		if err != nil {
			return p, err
		}
		p.TelemetryPort = port
	}
	return p, os.MkdirAll(p.DataDir, 0o755)
}

// Launch configures and starts s; the returned params say where its data and pprof are.
func (e *Env) Launch(s System) (*Process, peers.Params, error) {
	p, err := e.Params(s)
	if err != nil {
		return nil, p, err
	}
	return e.Relaunch(s, p)
}

// Relaunch starts s again with the same params (same data directory).
func (e *Env) Relaunch(s System, p peers.Params) (*Process, peers.Params, error) {
	dir := filepath.Dir(p.DataDir)
	args, err := s.Args(dir, p)
	if err != nil {
		return nil, p, fmt.Errorf("%s: %w", s.Name, err)
	}
	proc, err := StartEnv(s.Name, dir, s.Env, s.Binary, args...)
	return proc, p, err
}

// Row is one system's measurements over the window.
type Row struct {
	System        string
	Samples       int64   // delivered (or, for the floor, fetched) in the window
	SamplesPerSec float64 //
	CPUSeconds    float64 // utime+stime in the window
	CPUPerMillion float64 // CPU seconds per million samples
	PeakRSS       int64   // VmHWM at the end
	Series        int     // distinct series delivered in the window
	RSSPerSeries  float64 // PeakRSS / Series, bytes
	StartupRSS    int64   // VmHWM at the end of the warm-up: the start-up's peak (every node's first scrapes)
	LiveHeap      int64   // Go programs serving pprof: the heap in use at the last GC, at the end of the window
	Served        int64   // (series, timestamp) pairs edgesim served from start to the end of the window
	Lost          int64   // of those, the ones that never reached the sink (exact); -1: not counted
	Note          string
}

// Measure starts s, lets it warm up, then measures it over window; profile (if non-empty and the
// system serves pprof) receives a CPU profile taken during the window. Loss is counted exactly
// from the start (see settle), the warm-up included.
func (e *Env) Measure(ctx context.Context, s System, warmup, window time.Duration, profile string) (Row, error) {
	row := Row{System: s.Name, Lost: -1}
	e.beginAccount()
	proc, p, err := e.Launch(s)
	if err != nil {
		return row, err
	}
	defer proc.Stop(20 * time.Second)
	if !sleepCtx(ctx, warmup) {
		return row, ctx.Err()
	}
	if exited, err := proc.Exited(); exited {
		return row, fmt.Errorf("%s exited during warm-up: %v (log in %s)", s.Name, err, filepath.Dir(p.DataDir))
	}
	s0, _, err := e.progress(s, p)
	if err != nil {
		return row, err
	}
	before, err := ReadProc(proc.Pid())
	if err != nil {
		return row, err
	}
	row.StartupRSS = before.HWM
	start := time.Now()
	var profErr error
	if profile != "" && s.Pprof {
		profErr = fetchPprof(ctx, p.PprofAddr, fmt.Sprintf("profile?seconds=%d", int(min(window, 60*time.Second).Seconds())), profile)
	}
	if !sleepCtx(ctx, window-time.Since(start)) {
		return row, ctx.Err()
	}
	after, err := ReadProc(proc.Pid())
	if err != nil {
		return row, fmt.Errorf("%s during the window: %w", s.Name, err)
	}
	if profile != "" && s.Pprof && profErr == nil {
		// The heap at the end of the window: where the per-series memory goes.
		profErr = fetchPprof(ctx, p.PprofAddr, "heap", strings.TrimSuffix(profile, ".cpu.pprof")+".heap.pprof")
	}
	if s.Pprof {
		if row.LiveHeap, err = liveHeap(ctx, p.PprofAddr); err != nil {
			profErr = errors.Join(profErr, err)
		}
	}
	s1, series, err := e.progress(s, p)
	if err != nil {
		return row, err
	}
	row.fill(s1-s0, series, time.Since(start), after.CPUSeconds-before.CPUSeconds, after.HWM)
	if st := e.Sink.Stats(); st.Rejected > 0 {
		row.Note = fmt.Sprintf("%d requests rejected", st.Rejected)
	}
	if profErr != nil {
		row.Note = strings.TrimPrefix(row.Note+"; profile: "+profErr.Error(), "; ")
	}
	var acct Account
	if s.TSDB != "" {
		acct, err = e.settleStored(ctx, proc, filepath.Join(p.DataDir, s.TSDB))
	} else {
		acct, err = e.settle(ctx, 30*time.Second, 3*time.Minute)
	}
	if err != nil {
		return row, err
	}
	row.Served, row.Lost = acct.Served, acct.Lost()
	row.Note = joinNote(row.Note, acct.Note())
	return row, nil
}

// progress is how many samples s has delivered so far and how many distinct series: the sink's
// count, or for a system that stores instead of sending, its own count of samples appended to
// its TSDB and the series in its head.
func (e *Env) progress(s System, p peers.Params) (samples int64, series int, err error) {
	if s.TSDB == "" {
		st := e.Sink.Stats()
		return st.Samples, st.Series, nil
	}
	m, err := OwnMetrics(p.TelemetryPort)
	if err != nil {
		return 0, 0, err
	}
	return int64(m["otelcol_exporter_objstore_samples_appended"]), int(m["otelcol_exporter_objstore_head_series"]), nil
}

func (r *Row) fill(samples int64, series int, window time.Duration, cpu float64, hwm int64) {
	r.Samples, r.Series, r.CPUSeconds, r.PeakRSS = samples, series, cpu, hwm
	r.SamplesPerSec = float64(samples) / window.Seconds()
	if samples > 0 {
		r.CPUPerMillion = cpu / (float64(samples) / 1e6)
	}
	if series > 0 {
		r.RSSPerSeries = float64(hwm) / float64(series)
	}
}

// fetchPprof saves a profile (profile?seconds=N for CPU, heap) from a pprof extension.
func fetchPprof(ctx context.Context, addr, which, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", addr, which)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("saving profile: %w", err)
	}
	return f.Close()
}

// MeasureFloor runs the floor as its own process (self, floorArgs...) so its CPU and RSS are
// measured the same way; the process prints "samples N series M" after every round.
func (e *Env) MeasureFloor(ctx context.Context, self string, floorArgs []string, warmup, window time.Duration) (Row, error) {
	row := Row{System: "floor", Lost: -1}
	cmd := exec.CommandContext(ctx, self, floorArgs...)
	// Pdeathsig: a test that panics (timeout) must not leave the system running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return row, err
	}
	if err := cmd.Start(); err != nil {
		return row, fmt.Errorf("starting the floor: %w", err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	var samples, series atomic.Int64
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				m, _ := strconv.ParseInt(f[3], 10, 64)
				samples.Store(n)
				series.Store(m)
			}
		}
	}()
	if !sleepCtx(ctx, warmup) {
		return row, ctx.Err()
	}
	before, err := ReadProc(cmd.Process.Pid)
	if err != nil {
		return row, err
	}
	s0, start := samples.Load(), time.Now()
	if !sleepCtx(ctx, window) {
		return row, ctx.Err()
	}
	after, err := ReadProc(cmd.Process.Pid)
	if err != nil {
		return row, err
	}
	row.fill(samples.Load()-s0, int(series.Load()), time.Since(start), after.CPUSeconds-before.CPUSeconds, after.HWM)
	row.Note = "fetches and discards; series = sample lines per round"
	return row, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
