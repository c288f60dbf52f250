package logs

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
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
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

// startHASim runs a fleet behind several cloudcore replicas.
func startHASim(t *testing.T, nodes, cloudcores int, lc edgesim.LogsConfig) (*edgesim.Sim, string) {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	s, err := edgesim.New(edgesim.Config{Nodes: nodes, Seed: 7, Listen: "127.0.0.1:0", TLSDir: t.TempDir(),
		FleetFile: fleetFile, ManualStep: true, Cloudcores: cloudcores, Logs: lc})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })
	return s, fleetFile
}

// rig stands in for the receiver's root package: it builds the fleet the logs signal runs on,
// from a node file (or a kube registry) and edgesim's cloudcore (or each node's direct address).
type rig struct {
	logs      Config
	set       receiver.Settings
	fleetFile string
	refresh   time.Duration
	// registry, when set, is discovery mode kubernetes.
	registry *kube.Registry
	// cloudcores are the cloudcore transport's endpoints; none is transport direct.
	cloudcores []string
	caFile     string
}

// newRig is a logs signal following edge-apps through the sim's cloudcore, with short intervals.
func newRig(s *edgesim.Sim, fleetFile string) *rig {
	lc := DefaultConfig()
	lc.Namespaces = []string{"edge-apps"}
	lc.FlushInterval = 50 * time.Millisecond
	lc.RetryInterval = 50 * time.Millisecond
	lc.MaxRetryInterval = 200 * time.Millisecond
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "logs") // the same at every start: it names the position store
	return &rig{logs: lc, set: set, fleetFile: fleetFile, refresh: 100 * time.Millisecond,
		cloudcores: []string{s.Addr()}, caFile: s.TLSFiles().CAFile}
}

func (g *rig) transport(ctx context.Context, conns int) (transport.Transport, error) {
	if len(g.cloudcores) == 0 {
		return transport.NewDirect("http", transport.DefaultDirectEndpoint, nil, conns, time.Second), nil
	}
	tc := configtls.NewDefaultClientConfig()
	tc.CAFile = g.caFile
	tlsCfg, err := tc.LoadTLSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return transport.NewCloudcore(g.cloudcores, tlsCfg, conns, time.Second)
}

func (g *rig) build(ctx context.Context, needs edgefleet.Needs) (edgefleet.Parts, error) {
	t, err := g.transport(ctx, needs.Conns)
	if err != nil {
		return edgefleet.Parts{}, err
	}
	if g.registry == nil {
		return edgefleet.Parts{Transport: t,
			Discoverer: discovery.File{Path: g.fleetFile, Interval: g.refresh, Logger: zap.NewNop()}}, nil
	}
	nodes, err := g.registry.AcquireNodes(kube.NodeWatch{API: kube.DefaultAPIConfig(), Selector: kube.DefaultEdgeSelector})
	if err != nil {
		return edgefleet.Parts{}, err
	}
	d := discovery.Kubernetes{Nodes: nodes, Settle: 100 * time.Millisecond}
	release := nodes.Release
	if needs.Pods != nil {
		w := *needs.Pods
		w.API = kube.DefaultAPIConfig()
		pods, err := g.registry.AcquirePods(w)
		if err != nil {
			nodes.Release()
			return edgefleet.Parts{}, err
		}
		d.Pods = pods
		release = func() { pods.Release(); nodes.Release() }
	}
	return edgefleet.Parts{Discoverer: d, Transport: t, Release: release}, nil
}

func (g *rig) newReceiver(next consumer.Logs) (*Receiver, error) {
	f := edgefleet.New(edgefleet.Options{Build: g.build, ShardCount: 1, Logger: zap.NewNop()})
	ref, err := sharedcomponent.NewMap[struct{}, *edgefleet.Fleet]().Hold(struct{}{}, func() (*edgefleet.Fleet, error) { return f, nil })
	if err != nil {
		return nil, err
	}
	return New(Params{Settings: g.set, Config: g.logs, Next: next, Labels: kube.DefaultLabelMappings(),
		API: kube.DefaultAPIConfig(), Registry: g.registry, Fleet: ref, Classify: func(error) string { return "transport" }})
}

func startLogs(t *testing.T, g *rig, next consumer.Logs, host component.Host) *Receiver {
	t.Helper()
	r, err := g.newReceiver(next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), host))
	return r
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

func kubePod(ns, name, node string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{edgesim.PodLabel: "edgesim"}},
		Spec: corev1.PodSpec{NodeName: node}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return p
}

func lifeNode(name string, ready kube.Readiness) discovery.Target {
	return discovery.Target{Node: kube.Node{Name: name, Ready: ready, Labels: map[string]string{kube.LabelRegion: "eu"}}}
}

func eventNames(events []lifecycleEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.name + " " + e.node.Name
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
