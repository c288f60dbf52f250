package kubeedgereceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
)

// A fetched body waits for a conversion slot while it keeps its fetch slot: with every
// conversion slot taken, a scrape's request is answered but its data is not converted or sent,
// and the fetch slot stays taken; given a conversion slot, it goes on.
func TestBodiesWaitForAConversionSlotInTheirFetchSlot(t *testing.T) {
	cc := newFakeCloudcore(t)
	cc.set("10.0.0.1:10351", "/metrics/cadvisor", fixture(t, "metrics-cadvisor-1.35.txt"))
	sink := new(consumertest.MetricsSink)
	r := startReceiver(t, testConfig(t, cc, StaticNode{Name: "edge-1", IP: "10.0.0.1", Port: 10351}), sink)
	require.Eventually(t, func() bool { return len(batches(sink, "edge-1")) > 0 }, 5*time.Second, 10*time.Millisecond)

	for range cap(r.converting) {
		r.converting <- struct{}{}
	}
	// One node with one endpoint: a taken fetch slot is its round, after the last one was sent.
	require.Eventually(t, func() bool { return len(r.sem) == 1 }, 5*time.Second, time.Millisecond)
	sent := len(batches(sink, "edge-1"))
	// Far longer than scrape_timeout (150ms), which bounds the fetch itself.
	require.Never(t, func() bool { return len(batches(sink, "edge-1")) > sent || len(r.sem) == 0 },
		time.Second, 10*time.Millisecond, "nothing converted, the fetch slot kept")

	for range cap(r.converting) {
		<-r.converting
	}
	require.Eventually(t, func() bool { return len(batches(sink, "edge-1")) > sent }, 5*time.Second, 10*time.Millisecond)
}
