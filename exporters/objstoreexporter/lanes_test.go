package objstoreexporter

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
)

// Nodes' batches converted side by side are all stored, each node's series cached once: a
// node's batches keep to one lane.
func TestLanesConvertNodesSideBySide(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e := newTestExporter(t, cfg, nil, nil)
	e.lanes = newLanes(cfg, 4)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	data, err := captures.Read(kubeletScrapes[0].file)
	require.NoError(t, err)

	const nodes, rounds = 8, 3
	used := map[*lane]bool{}
	for n := range nodes {
		md := nodeScrape(t, data, kubeletScrapes[0], n, t0)
		l := e.laneOf(md)
		assert.Same(t, l, e.laneOf(nodeScrape(t, data, kubeletScrapes[0], n, t0+30_000)), "a node keeps its lane")
		used[l] = true
	}
	assert.Greater(t, len(used), 1, "nodes spread over the lanes")

	var wg sync.WaitGroup
	errs := make(chan error, nodes*rounds)
	for n := range nodes {
		wg.Go(func() {
			for r := range rounds {
				errs <- e.push(ctx, nodeScrape(t, data, kubeletScrapes[0], n, t0+int64(r)*30_000))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	perNode := len(expectedScrape(t, data, kubeletScrapes[0], t0))
	assert.Equal(t, nodes*perNode, e.seriesCached(), "every series cached once")
	got := readSamples(t, e.db, t0, t0+hour)
	assert.Len(t, got, nodes*rounds*perNode, "every sample stored")
}
