package kubeedgereceiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// noLeaks checks, after everything the test started is closed, that no goroutine is left.
func noLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// startLogSim runs a fleet whose nodes have log pods.
func startLogSim(t *testing.T, nodes int, lc edgesim.LogsConfig) (*edgesim.Sim, string) {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	s, err := edgesim.New(edgesim.Config{Nodes: nodes, Seed: 7, Listen: "127.0.0.1:0", TLSDir: t.TempDir(),
		FleetFile: fleetFile, ManualStep: true, Logs: lc})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })
	return s, fleetFile
}

func logsConfig(s *edgesim.Sim, fleetFile string) *Config {
	cfg := simConfig(s, fleetFile, time.Second)
	cfg.Transport.Cloudcore.TLS.CertFile, cfg.Transport.Cloudcore.TLS.KeyFile = "", ""
	cfg.Logs.Namespaces = []string{"edge-apps"}
	cfg.Logs.FlushInterval = 50 * time.Millisecond
	cfg.Logs.RetryInterval = 50 * time.Millisecond
	cfg.Logs.MaxRetryInterval = 200 * time.Millisecond
	return cfg
}

// storageHost is a host with one started file_storage extension.
type storageHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

var storageID = component.MustNewIDWithName("file_storage", "logs")

func newStorageHost(t *testing.T, dir string) (storageHost, extension.Extension) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	return storageHost{componenttest.NewNopHost(), map[component.ID]component.Component{storageID: ext}}, ext
}

func startLogs(t *testing.T, cfg *Config, next consumer.Logs, host component.Host) *logsReceiver {
	t.Helper()
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "logs") // the same at every start: it names the position store
	r, err := newLogsReceiver(set, cfg, next, nil)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), host))
	return r
}

// record is one delivered line.
type record struct {
	stream string // ns/pod/container[/iostream]
	seq    int64
	ts     time.Time
	attrs  map[string]any
}

func records(sink *consumertest.LogsSink) []record {
	var out []record
	for _, ld := range sink.AllLogs() {
		for i := range ld.ResourceLogs().Len() {
			rl := ld.ResourceLogs().At(i)
			res := rl.Resource().Attributes().AsRaw()
			for j := range rl.ScopeLogs().Len() {
				recs := rl.ScopeLogs().At(j).LogRecords()
				for k := range recs.Len() {
					out = append(out, toRecord(res, recs.At(k)))
				}
			}
		}
	}
	return out
}

func toRecord(res map[string]any, lr plog.LogRecord) record {
	body := lr.Body().Str()
	_, seqText, _ := strings.Cut(body, " seq=")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil {
		seq = -1
	}
	attrs := map[string]any{}
	for k, v := range res {
		attrs[k] = v
	}
	for k, v := range lr.Attributes().AsRaw() {
		attrs[k] = v
	}
	stream, _ := strings.CutSuffix(body, " seq="+seqText)
	if io, ok := attrs["log.iostream"]; ok {
		stream += "/" + io.(string)
	}
	return record{stream: stream, seq: seq, ts: lr.Timestamp().AsTime(), attrs: attrs}
}

// checkExactlyOnce asserts every stream's lines are the sim's lines 0..k, each once, in order,
// with each stream's own subset when stdout and stderr are split. It returns the lines per stream.
func checkExactlyOnce(t *testing.T, s *edgesim.Sim, recs []record, split bool) map[string]int {
	t.Helper()
	next := map[string]int64{}
	count := map[string]int{}
	for _, r := range recs {
		want := next[r.stream]
		if split {
			stderr := strings.HasSuffix(r.stream, "/stderr")
			for s.IsStderr(want) != stderr {
				want++
			}
		}
		if !assert.Equal(t, want, r.seq, "stream %s", r.stream) {
			return count
		}
		next[r.stream] = r.seq + 1
		count[r.stream]++
	}
	return count
}

func TestLogsFollowThroughCloudcoreExactlyOnce(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 3, edgesim.LogsConfig{PodsPerNode: 2, Rate: 200, Burst: 3, StderrEvery: 4, PollInterval: 20 * time.Millisecond})
	cfg := logsConfig(s, fleetFile)
	cfg.Logs.SplitStreams = true
	cfg.Logs.Storage = &storageID
	host, ext := newStorageHost(t, t.TempDir())
	defer ext.Shutdown(context.Background())
	sink := new(consumertest.LogsSink)
	r := startLogs(t, cfg, sink, host)

	// 3 nodes × 2 pods × 2 containers × stdout/stderr.
	require.Eventually(t, func() bool { return len(checkExactlyOnce(t, s, records(sink), true)) == 24 }, 20*time.Second, 20*time.Millisecond)
	// A tunnel drop ends the node's streams; they resume where they stopped.
	s.SetTunnelClosed("edge-00002", true)
	time.Sleep(300 * time.Millisecond) // the cut lasts a while: lines are written meanwhile
	s.Disconnect("edge-00002")
	time.Sleep(300 * time.Millisecond)
	s.Reconnect("edge-00002")
	before := len(records(sink))
	require.Eventually(t, func() bool { return len(records(sink)) > before+1000 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	// A restart resumes from the saved positions: nothing twice, nothing missing.
	stopped := len(records(sink))
	time.Sleep(200 * time.Millisecond)
	r = startLogs(t, cfg, sink, host)
	require.Eventually(t, func() bool { return len(records(sink)) > stopped+1000 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	recs := records(sink)
	counts := checkExactlyOnce(t, s, recs, true)
	assert.Len(t, counts, 24)

	// Attributes: pod, container, namespace, node, its region and site, the stream; the kubelet's time.
	n := s.Fleet().Nodes[1]
	var seen bool
	for _, rec := range recs {
		if rec.attrs["k8s.pod.name"] != "edge-00002-app-1" || rec.attrs["k8s.container.name"] != "c0" {
			continue
		}
		seen = true
		assert.Equal(t, "edge-apps", rec.attrs["k8s.namespace.name"])
		assert.Equal(t, n.Name, rec.attrs["k8s.node.name"])
		assert.Equal(t, n.Labels[kube.LabelRegion], rec.attrs["region"])
		assert.Equal(t, n.Labels[kube.LabelSite], rec.attrs["site"])
		wantIO := "stdout"
		if s.IsStderr(rec.seq) {
			wantIO = "stderr"
		}
		assert.Equal(t, wantIO, rec.attrs["log.iostream"])
		assert.True(t, rec.ts.After(time.Now().Add(-time.Hour)), rec.ts)
	}
	assert.True(t, seen)
}

// flakyConsumer refuses every batch while refuse is set.
type flakyConsumer struct {
	consumertest.LogsSink
	mu      sync.Mutex
	refuse  bool
	refused int
}

func (c *flakyConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		c.refused++
		return errors.New("queue full")
	}
	return c.LogsSink.ConsumeLogs(ctx, ld)
}

func (c *flakyConsumer) set(refuse bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = refuse
}

func (c *flakyConsumer) refusals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

func TestLogsRefusedBatchesAreOfferedAgain(t *testing.T) {
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 500})
	cfg := logsConfig(s, fleetFile)
	cfg.Logs.MaxPendingLines = 100 // the streams stop reading while refused
	c := &flakyConsumer{refuse: true}
	r := startLogs(t, cfg, c, componenttest.NewNopHost())
	defer r.Shutdown(context.Background())
	require.Eventually(t, func() bool { return c.refusals() > 5 }, 10*time.Second, 10*time.Millisecond)
	r.mu.Lock()
	for _, f := range r.followers {
		assert.LessOrEqual(t, f.pendingLen(), 100+1, "pending is bounded")
	}
	r.mu.Unlock()
	c.set(false)
	require.Eventually(t, func() bool { return len(records(&c.LogsSink)) > 2000 }, 20*time.Second, 20*time.Millisecond)
	counts := checkExactlyOnce(t, s, records(&c.LogsSink), false)
	assert.Len(t, counts, 2)
}

func TestLogsPermanentRefusalDropsAndMovesOn(t *testing.T) {
	s, fleetFile := startLogSim(t, 1, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 100})
	cfg := logsConfig(s, fleetFile)
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	next, err := consumer.NewLogs(func(context.Context, plog.Logs) error {
		once.Do(calls.Done)
		return consumererror.NewPermanent(errors.New("bad data"))
	})
	require.NoError(t, err)
	r := startLogs(t, cfg, next, componenttest.NewNopHost())
	calls.Wait()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, f := range r.followers {
			return f.pendingLen() < cfg.Logs.MaxPendingLines && f.read.N > 0
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestLogsPodsGoneStopTheirStreams(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	cfg := logsConfig(s, fleetFile)
	cfg.Discovery.File.RefreshInterval = 20 * time.Millisecond
	sink := new(consumertest.LogsSink)
	r := startLogs(t, cfg, sink, componenttest.NewNopHost())
	followed := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.followers)
	}
	require.Eventually(t, func() bool { return followed() == 4 }, 10*time.Second, 10*time.Millisecond)

	// One pod goes away: its stream stops and is forgotten; a node going away takes its pods.
	f := s.Fleet()
	f.Nodes[0].Pods = f.Nodes[0].Pods[:1]
	require.NoError(t, fleet.Save(fleetFile, f))
	require.Eventually(t, func() bool { return followed() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.draining) == 0
	}, 10*time.Second, 10*time.Millisecond)
	f.Nodes = f.Nodes[:1]
	require.NoError(t, fleet.Save(fleetFile, f))
	require.Eventually(t, func() bool { return followed() == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestLogsSelection(t *testing.T) {
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	for name, tc := range map[string]struct {
		ns       []string
		selector string
		want     int
	}{
		"other namespace":    {ns: []string{"kube-system"}, want: 0},
		"namespace":          {ns: []string{"edge-apps"}, want: 4},
		"all namespaces":     {ns: []string{"*"}, want: 4},
		"selector matches":   {ns: []string{"edge-apps"}, selector: edgesim.PodLabel + "=edgesim", want: 4},
		"selector excludes":  {ns: []string{"edge-apps"}, selector: edgesim.PodLabel + "!=edgesim", want: 0},
		"shard of one of 2":  {ns: []string{"edge-apps"}, want: -1},
		"label set required": {ns: []string{"edge-apps"}, selector: "tier", want: 0},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := logsConfig(s, fleetFile)
			cfg.Logs.Namespaces, cfg.Logs.LabelSelector = tc.ns, tc.selector
			r, err := newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink), nil)
			require.NoError(t, err)
			if tc.want < 0 {
				cfg.Shard = ShardConfig{Index: 1, Count: 2}
			}
			r.sync(context.Background(), nil) // nothing discovered: nothing followed
			assert.Empty(t, r.followers)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			targets := fileTargets(t, fleetFile)
			r.slots = make(chan struct{}) // no stream may open: this checks the selection only
			r.sync(ctx, targets)
			if tc.want >= 0 {
				assert.Len(t, r.followers, tc.want)
			} else {
				assert.Less(t, len(r.followers), 4)
			}
			cancel()
			r.wg.Wait()
		})
	}
}

func TestLogsDeniedByDefaultAndRejectedModes(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	_, err := newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink), nil)
	assert.ErrorContains(t, err, "logs.namespaces must list")
	cfg.Logs.Namespaces = []string{"apps"}
	cfg.Discovery.Mode = DiscoveryStatic
	_, err = newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink), nil)
	assert.ErrorContains(t, err, "static lists no pods")

	// A storage that is not there, or not a storage, fails Start with its name.
	cfg.Discovery.Mode = DiscoveryFile
	cfg.Discovery.File.Path = filepath.Join(t.TempDir(), "none.json")
	cfg.Logs.Storage = &storageID
	r, err := newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink), nil)
	require.NoError(t, err)
	assert.ErrorContains(t, r.Start(context.Background(), componenttest.NewNopHost()), "file_storage/logs is not configured")
	nf := extensiontest.NewNopFactory()
	nop, err := nf.Create(context.Background(), extensiontest.NewNopSettings(nf.Type()), nf.CreateDefaultConfig())
	require.NoError(t, err)
	host := storageHost{componenttest.NewNopHost(), map[component.ID]component.Component{storageID: nop}}
	assert.ErrorContains(t, r.Start(context.Background(), host), "file_storage/logs is not a storage extension")
}

// fileTargets is what file discovery reports for a node file.
func fileTargets(t *testing.T, path string) []discovery.Target {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []discovery.Target
	require.NoError(t, discovery.File{Path: path, Interval: time.Hour, Logger: zap.NewNop()}.Run(ctx, func(ts []discovery.Target) {
		got = ts
		cancel()
	}))
	return got
}

func TestLogsConfigValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*LogsConfig)
		want string
	}{
		"namespace":     {func(l *LogsConfig) { l.Namespaces = []string{"Bad_NS"} }, "logs.namespaces[0]"},
		"selector":      {func(l *LogsConfig) { l.LabelSelector = "a in (" }, "logs.label_selector"},
		"max streams":   {func(l *LogsConfig) { l.MaxStreams = 0 }, "logs.max_streams"},
		"bytes":         {func(l *LogsConfig) { l.NodeBytesPerSecond = -1 }, "logs.node_bytes_per_second"},
		"line size":     {func(l *LogsConfig) { l.MaxLineSize = 10 }, "logs.max_line_size"},
		"flush":         {func(l *LogsConfig) { l.FlushInterval = 0 }, "logs.flush_interval"},
		"pending":       {func(l *LogsConfig) { l.MaxPendingLines = 0 }, "logs.max_pending_lines"},
		"pending bytes": {func(l *LogsConfig) { l.MaxPendingBytes = 100 }, "logs.max_pending_bytes"},
		"retry":         {func(l *LogsConfig) { l.RetryInterval = time.Minute }, "logs.retry_interval"},
		"retry absent":  {func(l *LogsConfig) { l.RetryInterval = 0 }, "logs.retry_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			require.NoError(t, cfg.Validate())
			tc.mod(&cfg.Logs)
			assert.ErrorContains(t, cfg.Validate(), tc.want)
		})
	}
}

// lineServer is a kubelet whose containerLogs body is fixed, once.
func lineServer(t *testing.T, body string) (fleetFile string) {
	t.Helper()
	var served sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Do(func() { fmt.Fprint(w, body) })
	}))
	t.Cleanup(srv.Close)
	fleetFile = filepath.Join(t.TempDir(), "fleet.json")
	data := fmt.Sprintf(`{"nodes":[{"name":"n1","ip":"10.0.0.1","direct":%q,"pods":[{"namespace":"apps","name":"p","containers":["c"]}]}]}`,
		strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, os.WriteFile(fleetFile, []byte(data), 0o600))
	return fleetFile
}

func TestLogsLongAndMalformedLines(t *testing.T) {
	long := strings.Repeat("x", 300)
	body := "2026-01-02T03:04:05.000000001Z short\n" +
		"not a timestamp line\n" +
		"2026-01-02T03:04:05.000000002Z " + long + "\n" +
		"2026-01-02T03:04:06Z after\n" +
		"2026-01-02T03:04:07Z cut in transit" // no newline: read again on resume, never half-delivered
	cfg := createDefaultConfig().(*Config)
	cfg.Discovery.Mode = DiscoveryFile
	cfg.Discovery.File = FileDiscoveryConfig{Path: lineServer(t, body), RefreshInterval: time.Hour}
	cfg.Transport.Mode = TransportDirect
	cfg.Logs.Namespaces = []string{"apps"}
	cfg.Logs.MaxLineSize = 100
	cfg.Logs.FlushInterval = 20 * time.Millisecond
	sink := new(consumertest.LogsSink)
	r := startLogs(t, cfg, sink, componenttest.NewNopHost())
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	var bodies []string
	var truncated []bool
	for _, ld := range sink.AllLogs() {
		recs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		for i := range recs.Len() {
			bodies = append(bodies, recs.At(i).Body().Str())
			_, cut := recs.At(i).Attributes().Get("log.record.truncated")
			truncated = append(truncated, cut)
		}
	}
	require.Len(t, bodies, 3)
	assert.Equal(t, "short", bodies[0])
	assert.Less(t, len(bodies[1]), 300)
	assert.GreaterOrEqual(t, len(bodies[1]), 100)
	assert.Equal(t, []bool{false, true, false}, truncated)
	assert.Equal(t, "after", bodies[2])
}

func TestPositionRoundTripAndRejects(t *testing.T) {
	p := position{TS: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), N: 3}
	got, err := decodePosition(p.encode())
	require.NoError(t, err)
	assert.True(t, p.TS.Equal(got.TS))
	assert.Equal(t, 3, got.N)
	for _, bad := range []string{"{", `{"ts":"x","n":1}`, `{"ts":"2026-01-02T03:04:05Z","n":-1}`, `{"n":2}`, `{"ts":"2026-01-02T03:04:05Z","n":1,"x":1}`} {
		_, err := decodePosition([]byte(bad))
		assert.Error(t, err, bad)
	}
	k := streamKey{ns: "a", pod: "p", container: "c", stream: streamStderr}
	assert.Equal(t, "containerlog/a/p/c/Stderr", k.storageKey())
	assert.Equal(t, "/containerLogs/a/p/c?follow=true&sinceTime=2026-01-02T03%3A04%3A05Z&stream=Stderr&timestamps=true", k.path(p.TS))
}

// Pending lines are bounded by bytes, per stream and for the receiver, not only by count (4,096
// lines of 64 KiB would be 256 MiB per stream): while the pipeline refuses, the streams stop
// reading at the byte bounds, and once it accepts, every line arrives exactly once.
func TestLogsPendingBoundedByBytes(t *testing.T) {
	s, fleetFile := startLogSim(t, 3, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 500})
	cfg := logsConfig(s, fleetFile)
	cfg.Logs.MaxPendingLines = 1 << 20
	cfg.Logs.MaxLineSize = 256
	cfg.Logs.MaxPendingBytes = 4096
	cfg.Logs.MaxPendingBytesTotal = 6144
	require.NoError(t, cfg.Validate())
	c := &flakyConsumer{refuse: true}
	r := startLogs(t, cfg, c, componenttest.NewNopHost())
	defer r.Shutdown(context.Background())
	require.Eventually(t, func() bool {
		return c.refusals() > 5 && r.pendingBytes.Load() >= cfg.Logs.MaxPendingBytesTotal
	}, 10*time.Second, 10*time.Millisecond, "the streams fill the receiver-wide bound")
	time.Sleep(300 * time.Millisecond) // streams held back stay so
	line := int64(cfg.Logs.MaxLineSize)
	r.mu.Lock()
	var sum int64
	for _, f := range r.followers {
		f.mu.Lock()
		assert.LessOrEqual(t, f.bytes, cfg.Logs.MaxPendingBytes+line, "one stream's pending bytes")
		sum += f.bytes
		f.mu.Unlock()
	}
	r.mu.Unlock()
	assert.Equal(t, sum, r.pendingBytes.Load(), "the receiver-wide count is the streams' sum")
	assert.LessOrEqual(t, sum, cfg.Logs.MaxPendingBytesTotal+3*line, "all streams' pending bytes")
	c.set(false)
	require.Eventually(t, func() bool { return len(records(&c.LogsSink)) > 3000 }, 20*time.Second, 20*time.Millisecond)
	counts := checkExactlyOnce(t, s, records(&c.LogsSink), false)
	assert.Len(t, counts, 3)
}
