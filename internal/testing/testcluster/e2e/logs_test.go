package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// lines keeps, per container stream, the sequence numbers of the lines received in order.
type lines struct {
	mu   sync.Mutex
	seqs map[string][]int64
}

func (l *lines) consume(_ context.Context, ld plog.Logs) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range ld.ResourceLogs().Len() {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := range sls.Len() {
			recs := sls.At(j).LogRecords()
			for k := range recs.Len() {
				stream, seq, _ := strings.Cut(recs.At(k).Body().Str(), " seq=")
				n, err := strconv.ParseInt(seq, 10, 64)
				if err != nil {
					n = -1
				}
				l.seqs[stream] = append(l.seqs[stream], n)
			}
		}
	}
	return nil
}

// check says what is wrong: fewer streams than want, a stream with fewer than min lines, or a
// line out of order, repeated or missing; "" when nothing is.
func (l *lines) check(want, min int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seqs) < want {
		return strconv.Itoa(len(l.seqs)) + " streams"
	}
	for stream, seqs := range l.seqs {
		for i, n := range seqs {
			if n != int64(i) {
				return stream + ": line " + strconv.Itoa(i) + " has seq " + strconv.FormatInt(n, 10)
			}
		}
		if len(seqs) < min {
			return stream + ": " + strconv.Itoa(len(seqs)) + " lines"
		}
	}
	return ""
}

// Container logs through the real API server's node proxy (transport apiserver), with the
// chart's collector ServiceAccount: every container's numbered lines arrive once and in order.
func TestLogsThroughNodeProxy(t *testing.T) {
	c := cluster(t)
	const nodes = 3
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	sim, reg := startFleet(t, c, nodes, func(cfg *edgesim.Config) {
		cfg.FleetFile = fleetFile
		cfg.Logs = edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 2, Rate: 20}
	})
	require.NoError(t, reg.Register(context.Background()))

	got := &lines{seqs: map[string][]int64{}}
	kubeconfig := kubeconfigFor(t, c, "edgetel-collector")
	api := map[string]any{"auth_type": "kubeConfig", "kubeconfig": kubeconfig}
	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"discovery": map[string]any{"mode": "file", "file": map[string]any{"path": fleetFile}},
		"transport": map[string]any{"mode": "apiserver", "apiserver": api},
		"logs":      map[string]any{"namespaces": []any{sim.Fleet().Nodes[0].Pods[0].Namespace}, "flush_interval": "100ms"},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.(interface{ Validate() error }).Validate())
	next, err := consumer.NewLogs(got.consume)
	require.NoError(t, err)
	r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), nil))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	var last string
	ok := assert.Eventually(t, func() bool {
		last = got.check(nodes*2, 40) // two seconds of lines from each container
		return last == ""
	}, time.Minute, 100*time.Millisecond)
	require.True(t, ok, "logs through the node proxy: %s", last)
}
