package kubeedgereceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/logs"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// The logs signal's own tests are in internal/logs; these are the receiver's side of it: its
// configuration, the checks that need the rest of it, and the signal on the shared fleet.

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

func kubePod(ns, name, node string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{edgesim.PodLabel: "edgesim"}},
		Spec: corev1.PodSpec{NodeName: node}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return p
}

// streamsOf lists the streams (namespace/pod/container) a sink got lines of.
func streamsOf(sink *consumertest.LogsSink) map[string]bool {
	out := map[string]bool{}
	for _, ld := range sink.AllLogs() {
		for i := range ld.ResourceLogs().Len() {
			attrs := ld.ResourceLogs().At(i).Resource().Attributes()
			ns, _ := attrs.Get("k8s.namespace.name")
			pod, _ := attrs.Get("k8s.pod.name")
			c, _ := attrs.Get("k8s.container.name")
			if pod.Str() != "" {
				out[ns.Str()+"/"+pod.Str()+"/"+c.Str()] = true
			}
		}
	}
	return out
}

func TestLogsConfigValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*logs.Config)
		want string
	}{
		"namespace":     {func(l *logs.Config) { l.Namespaces = []string{"Bad_NS"} }, "logs.namespaces[0]"},
		"selector":      {func(l *logs.Config) { l.LabelSelector = "a in (" }, "logs.label_selector"},
		"max streams":   {func(l *logs.Config) { l.MaxStreams = 0 }, "logs.max_streams"},
		"bytes":         {func(l *logs.Config) { l.NodeBytesPerSecond = -1 }, "logs.node_bytes_per_second"},
		"line size":     {func(l *logs.Config) { l.MaxLineSize = 10 }, "logs.max_line_size"},
		"flush":         {func(l *logs.Config) { l.FlushInterval = 0 }, "logs.flush_interval"},
		"pending":       {func(l *logs.Config) { l.MaxPendingLines = 0 }, "logs.max_pending_lines"},
		"pending bytes": {func(l *logs.Config) { l.MaxPendingBytes = 100 }, "logs.max_pending_bytes"},
		"retry":         {func(l *logs.Config) { l.RetryInterval = time.Minute }, "logs.retry_interval"},
		"retry absent":  {func(l *logs.Config) { l.RetryInterval = 0 }, "logs.retry_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			require.NoError(t, cfg.Validate())
			tc.mod(&cfg.Logs)
			assert.ErrorContains(t, cfg.Validate(), tc.want)
		})
	}
}

// The checks that need the receiver's discovery: static lists no pods, and Kubernetes Events
// need the kubernetes mode.
func TestLogsRejectedModes(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Logs.Namespaces = []string{"apps"}
	cfg.Discovery.Mode = DiscoveryStatic
	_, err := newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink), nil)
	assert.ErrorContains(t, err, "static lists no pods")

	cfg.Discovery.Mode = DiscoveryFile
	cfg.Discovery.File.Path = filepath.Join(t.TempDir(), "none.json")
	cfg.Logs.Namespaces = nil
	cfg.Logs.LifecycleEvents, cfg.Logs.KubernetesEvents = true, true
	_, err = newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), nil)
	assert.ErrorContains(t, err, "logs.kubernetes_events needs")
}
