package kubeedgereceiver

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/logs"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// connCounter is a TCP relay in front of a cloudcore that counts the connections made to it
// and those still open.
type connCounter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu          sync.Mutex
	dials, open int
	conns       map[net.Conn]bool
}

func newConnCounter(t *testing.T, target string) *connCounter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &connCounter{ln: ln, target: target, conns: map[net.Conn]bool{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		c.mu.Lock()
		for conn := range c.conns {
			_ = conn.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

func (c *connCounter) addr() string { return c.ln.Addr().String() }

func (c *connCounter) counts() (dials, open int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dials, c.open
}

func (c *connCounter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		c.mu.Lock()
		c.dials++
		c.open++
		c.conns[in], c.conns[out] = true, true
		c.mu.Unlock()
		c.wg.Add(1)
		go c.relay(in, out)
	}
}

// relay copies both ways until either side closes, then closes both.
func (c *connCounter) relay(in, out net.Conn) {
	defer c.wg.Done()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = in.Close()
			_ = out.Close()
			c.mu.Lock()
			c.open--
			delete(c.conns, in)
			delete(c.conns, out)
			c.mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, in)
		closeBoth()
		close(done)
	}()
	_, _ = io.Copy(in, out)
	closeBoth()
	<-done
}

// countWatches counts the watches of a fake clientset by resource.
func countWatches(client *fake.Clientset) map[string]int {
	out := map[string]int{}
	for _, a := range client.Actions() {
		if a.GetVerb() == "watch" {
			out[a.GetResource().Resource]++
		}
	}
	return out
}

// bothSignals creates the metrics and logs signals of one receiver ID through one factory.
func bothSignals(t *testing.T, f receiver.Factory, cfg *Config) (receiver.Metrics, *consumertest.MetricsSink, receiver.Logs, *consumertest.LogsSink) {
	t.Helper()
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "both")
	msink, lsink := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, msink)
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, lsink)
	require.NoError(t, err)
	// A test that fails early still stops both (a second Shutdown does nothing).
	t.Cleanup(func() {
		assert.NoError(t, mr.Shutdown(context.Background()))
		assert.NoError(t, lr.Shutdown(context.Background()))
	})
	return mr, msink, lr, lsink
}

// With logs and metrics on one receiver ID there is one discovery and one transport: one Node
// watch and one Pod watch on the API server, and one connection to cloudcore (HTTP/2 carries
// the scrapes and the log streams; a second transport would hold a second connection).
func TestOneDiscoveryAndTransportPerReceiverID(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	cc := newConnCounter(t, s.Addr())
	fl := s.Fleet()
	client := fake.NewClientset(fl.Nodes[0].KubeNode(corev1.ConditionTrue), fl.Nodes[1].KubeNode(corev1.ConditionTrue),
		kubePod("edge-apps", "edge-00001-app-0", "edge-00001", "c0"),
		kubePod("edge-apps", "edge-00002-app-1", "edge-00002", "c0"))
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := logsConfig(s, fleetFile)
	cfg.Discovery.Mode = DiscoveryKubernetes
	cfg.CollectionInterval, cfg.ScrapeTimeout = 200*time.Millisecond, 200*time.Millisecond
	cfg.Transport.Cloudcore.Endpoints = []string{cc.addr()}
	mr, msink, lr, lsink := bothSignals(t, newFactory(reg), cfg)
	ctx := context.Background()
	require.NoError(t, lr.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, mr.Start(ctx, componenttest.NewNopHost()))

	// Both signals work: every node scraped, both streams followed.
	require.Eventually(t, func() bool {
		return len(batches(msink, "edge-00001")) > 2 && len(batches(msink, "edge-00002")) > 2 && len(streamsOf(lsink)) == 2
	}, 20*time.Second, 10*time.Millisecond)
	// Two requests made before the first connection was up may each have dialled; the
	// transport keeps one HTTP/2 connection and closes the other.
	require.Eventually(t, func() bool { _, open := cc.counts(); return open == 1 }, 10*time.Second, 10*time.Millisecond)
	dials, _ := cc.counts()
	scraped := len(msink.AllMetrics())
	require.Eventually(t, func() bool { return len(msink.AllMetrics()) > scraped+6 }, 10*time.Second, 10*time.Millisecond)
	d, open := cc.counts()
	assert.Equal(t, 1, open, "one transport holds one connection")
	assert.Equal(t, dials, d, "later rounds dial no more")
	assert.Equal(t, map[string]int{"nodes": 1, "pods": 1}, countWatches(client), "one discovery")

	require.NoError(t, mr.Shutdown(ctx))
	require.NoError(t, lr.Shutdown(ctx))
	assert.Equal(t, map[string]int{"nodes": 1, "pods": 1}, countWatches(client))
}

// One signal's Shutdown leaves the other running on the shared fleet; the last one stops it
// (noLeaks: discovery, informers and transport end), and the factory then builds a new fleet
// for the ID.
func TestFleetOutlivesOneSignal(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	fl := s.Fleet()
	client := fake.NewClientset(fl.Nodes[0].KubeNode(corev1.ConditionTrue), fl.Nodes[1].KubeNode(corev1.ConditionTrue),
		kubePod("edge-apps", "edge-00001-app-0", "edge-00001", "c0"),
		kubePod("edge-apps", "edge-00002-app-1", "edge-00002", "c0"))
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := logsConfig(s, fleetFile)
	cfg.Discovery.Mode = DiscoveryKubernetes
	cfg.CollectionInterval, cfg.ScrapeTimeout = 200*time.Millisecond, 200*time.Millisecond
	f := newFactory(reg)
	mr, msink, lr, lsink := bothSignals(t, f, cfg)
	fleet := mr.(*kubeedgeReceiver).fleet.Value()
	require.Same(t, fleet, lr.(*logs.Receiver).Fleet(), "one fleet per receiver ID")
	ctx := context.Background()
	require.NoError(t, mr.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, lr.Start(ctx, componenttest.NewNopHost()))
	require.Eventually(t, func() bool {
		return len(batches(msink, "edge-00002")) > 0 && len(streamsOf(lsink)) == 2
	}, 20*time.Second, 10*time.Millisecond)

	// The metrics signal stops; the logs signal still reads, and follows a new pod.
	require.NoError(t, mr.Shutdown(ctx))
	require.NotNil(t, fleet.Transport(), "the fleet runs while a signal holds it")
	_, err := client.CoreV1().Pods("edge-apps").Create(ctx, kubePod("edge-apps", "edge-00001-app-1", "edge-00001", "c0"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(streamsOf(lsink)) == 3 }, 20*time.Second, 10*time.Millisecond)
	scraped := len(msink.AllMetrics())

	// The last signal stops the fleet: no transport, the informers released.
	require.NoError(t, lr.Shutdown(ctx))
	assert.Nil(t, fleet.Transport())
	assert.Equal(t, scraped, len(msink.AllMetrics()), "no scrape after the metrics signal stopped")

	// A new receiver of the ID gets a new fleet and a new watch.
	mr2, msink2, lr2, _ := bothSignals(t, f, cfg)
	require.NotSame(t, fleet, mr2.(*kubeedgeReceiver).fleet.Value())
	require.NoError(t, mr2.Start(ctx, componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return len(batches(msink2, "edge-00001")) > 0 }, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, 2, countWatches(client)["nodes"], "the first fleet's watch ended with it")
	// lr2 never started: its Shutdown lets go of the fleet without stopping it twice.
	require.NoError(t, lr2.Shutdown(ctx))
	require.NoError(t, mr2.Shutdown(ctx))
}
