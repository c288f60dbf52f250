// Package thanostest runs the real Thanos (EDGETEL_THANOS, built by `make tool-thanos`), and other
// Prometheus-style servers such as Cortex, in tests:
// a component on free loopback ports, stopped when the test ends, and its query API.
package thanostest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// Bin returns the Thanos binary: the test is skipped when EDGETEL_THANOS is unset.
func Bin(t testing.TB) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_THANOS", "tool-thanos")
}

// FreeAddr returns a loopback address nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// Process is a running Thanos component.
type Process struct {
	HTTP, GRPC string
	Log        string
	args       []string
	stop       func() // interrupts the process and waits for it to exit
	bin, name  string
	readyPath  string
}

// Start runs `thanos <component> args...` with --http-address and --grpc-address on free
// loopback ports (the compactor has no gRPC server: grpc false), waits until its /-/ready
// answers 200 and stops it when the test ends.
func Start(t testing.TB, component string, grpc bool, args ...string) *Process {
	t.Helper()
	p := &Process{HTTP: FreeAddr(t)}
	args = append([]string{component, "--http-address=" + p.HTTP}, args...)
	if grpc {
		p.GRPC = FreeAddr(t)
		args = append(args, "--grpc-address="+p.GRPC)
	}
	return StartArgs(t, p, args...)
}

// StartArgs runs `thanos args...` as given (args[0] is the component), whose HTTP server
// listens on p.HTTP, waits until its /-/ready answers 200 and stops it when the test ends.
func StartArgs(t testing.TB, p *Process, args ...string) *Process {
	t.Helper()
	p.bin, p.name, p.readyPath = Bin(t), "thanos "+args[0], "/-/ready"
	return p.start(t, args)
}

// StartProgram runs another Prometheus-style server the same way (Cortex, say): bin with args,
// its HTTP server on p.HTTP, ready when readyPath answers 200; name labels its log.
func StartProgram(t testing.TB, p *Process, bin, name, readyPath string, args ...string) *Process {
	t.Helper()
	p.bin, p.name, p.readyPath = bin, name, readyPath
	return p.start(t, args)
}

func (p *Process) start(t testing.TB, args []string) *Process {
	t.Helper()
	// Thanos Receive v0.42.4 crashes when it starts in the first minute of every fourth hour
	// (00:00, 04:00, … by the clock): its tenant pruning runs in that minute (cmd/thanos/receive.go,
	// minutes of the day % 240 == 0) and meets a tenant whose TSDB is not open yet (nil *DB in
	// MultiTSDB.Prune → shouldBeMarkedInactive; seen at 00:00 UTC). A start that ends in a panic
	// is tried again once that minute is over.
	for attempt := 1; ; attempt++ {
		crashed := p.try(t, args, attempt < 3)
		if !crashed {
			return p
		}
		wait := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + time.Second))
		t.Logf("%s crashed while starting (attempt %d), starting it again in %v", p.name, attempt, wait.Round(time.Second))
		time.Sleep(wait)
	}
}

// try starts the process once and waits until it is ready; with retry, a crash (a Go panic in
// its log) before it is ready returns true instead of failing the test.
func (p *Process) try(t testing.TB, args []string, retry bool) bool {
	t.Helper()
	p.Log = filepath.Join(t.TempDir(), strings.ReplaceAll(p.name, " ", "-")+".log")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	log, err := os.Create(p.Log)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	// Closed when the process has exited: both the readiness loop and the cleanup wait on it (a
	// channel of one error, read by the loop, left the cleanup waiting forever).
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); log.Close(); close(exited) }()
	p.args, p.stop = args, func() { cancel(); <-exited }
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(p.Log)
			t.Logf("%s log:\n%s", p.name, tail(string(out), 4000))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !p.ready() {
		select {
		case <-exited:
			out, _ := os.ReadFile(p.Log)
			if retry && strings.Contains(string(out), "panic: ") {
				return true
			}
			t.Fatalf("%s (%s) exited (%v):\n%s", p.name, strings.Join(args, " "), waitErr, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(p.Log)
			t.Fatalf("%s never became ready:\n%s", p.name, tail(string(out), 4000))
		}
	}
	return false
}

// Stop interrupts the process (SIGINT, as Thanos expects for a clean shutdown) and waits until it
// has exited; Restart starts it again with the same arguments, addresses and data directory.
func (p *Process) Stop() { p.stop() }

// Restart starts a stopped process again with the arguments it was first started with.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	p.start(t, p.args)
}

// ArgsFile reads flags kept one per line in a file (blank lines and # comments skipped), as the
// examples keep the flags of the Thanos components they expect.
func ArgsFile(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var args []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			args = append(args, l)
		}
	}
	return args
}

func (p *Process) ready() bool {
	resp, err := http.Get("http://" + p.HTTP + p.readyPath)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Answer is a Prometheus API query answer.
type Answer struct {
	Vector   model.Vector
	Matrix   model.Matrix
	Warnings []string
}

// Query runs an instant query at `at` against a Prometheus-compatible API at base (a URL
// such as http://127.0.0.1:9090), with extra form values (e.g. dedup=false for Thanos).
func Query(t testing.TB, base, expr string, at time.Time, extra url.Values) (*Answer, error) {
	t.Helper()
	return QueryAs(t, base, nil, expr, at, extra)
}

// QueryAs is Query with request headers (Cortex's X-Scope-OrgID names the tenant).
func QueryAs(t testing.TB, base string, header http.Header, expr string, at time.Time, extra url.Values) (*Answer, error) {
	t.Helper()
	v := url.Values{"query": {expr}, "time": {formatTime(at)}}
	for k, vs := range extra {
		v[k] = vs
	}
	return get(base+"/api/v1/query", v, header)
}

// QueryRange runs a range query.
func QueryRange(t testing.TB, base, expr string, start, end time.Time, step time.Duration, extra url.Values) (*Answer, error) {
	t.Helper()
	v := url.Values{"query": {expr}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	for k, vs := range extra {
		v[k] = vs
	}
	return get(base+"/api/v1/query_range", v, nil)
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

func get(u string, v url.Values, header http.Header) (*Answer, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", u, body, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", u, r.Error)
	}
	a := &Answer{Warnings: r.Warnings}
	switch r.Data.ResultType {
	case "vector":
		err = json.Unmarshal(r.Data.Result, &a.Vector)
	case "matrix":
		err = json.Unmarshal(r.Data.Result, &a.Matrix)
	default:
		err = fmt.Errorf("result type %q", r.Data.ResultType)
	}
	return a, err
}

// Run runs a Thanos command to its end (e.g. `tools bucket verify`, a one-shot `compact`) and
// returns its log; it fails the test when the command fails.
func Run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	require.NoError(t, err, "thanos %s:\n%s", strings.Join(args, " "), tail(string(out), 4000))
	return string(out)
}

// Warnings returns the lines of a Thanos log at level warn or error.
func Warnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") {
			out = append(out, l)
		}
	}
	return out
}
