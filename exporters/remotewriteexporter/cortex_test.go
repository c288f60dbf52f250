package remotewriteexporter

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// cortex is a real single-process Cortex (EDGETEL_CORTEX, `make tool-cortex`) started with
// examples/cortex-mimir/cortex.yaml as written: tenants by X-Scope-OrgID, a 6 h out-of-order
// window.
type cortex struct {
	base string // http://127.0.0.1:port
}

func startCortex(t *testing.T) *cortex {
	t.Helper()
	bin := testprog.Path(t, "EDGETEL_CORTEX", "tool-cortex")
	cfg, err := filepath.Abs(filepath.Join("..", "..", "examples", "cortex-mimir", "cortex.yaml"))
	require.NoError(t, err)
	p := &thanostest.Process{HTTP: thanostest.FreeAddr(t)}
	_, httpPort, _ := strings.Cut(p.HTTP, ":")
	_, grpcPort, _ := strings.Cut(thanostest.FreeAddr(t), ":")
	t.Setenv("CORTEX_HTTP_PORT", httpPort)
	t.Setenv("CORTEX_GRPC_PORT", grpcPort)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "alerts"), 0o755))
	t.Setenv("CORTEX_DIR", dir)
	thanostest.StartProgram(t, p, bin, "cortex", "/ready", "-config.file="+cfg, "-config.expand-env=true")
	return &cortex{base: "http://" + p.HTTP}
}

func (c *cortex) write() string { return c.base + "/api/v1/push" }

// samples returns the samples of testMetric Cortex holds for tenant in the twelve hours before
// at, by series (gaugeKey form).
func (c *cortex) samples(t *testing.T, tenant string, at time.Time) map[string][]model.SamplePair {
	t.Helper()
	a, err := thanostest.QueryAs(t, c.base+"/prometheus", http.Header{"X-Scope-Orgid": {tenant}},
		testMetric+"[12h]", at, url.Values{})
	if err != nil {
		return nil
	}
	out := map[string][]model.SamplePair{}
	for _, s := range a.Matrix {
		key := fmt.Sprintf(`%s{cluster="c1",instance="edge-1:10350",job="rwtest",series="%s"}`, testMetric, s.Metric["series"])
		out[key] = s.Values
	}
	return out
}

// edgeremotewrite → real Cortex, two tenants (X-Scope-OrgID), RW 1.0: a backlog inside the
// out-of-order window lands with its original timestamps; one older than the window, and a
// changed value at a stored timestamp, are refused (400): only those samples are dropped,
// counted as rejected, never resent; a repeat of stored samples is taken. Read back through
// Cortex's Prometheus API, per tenant, each sample once.
func TestCortexTenantsWindowAndConflicts(t *testing.T) {
	c := startCortex(t)
	now := time.Now().Truncate(time.Second)
	fresh := now.Add(-2 * time.Minute).UnixMilli()
	late := now.Add(-3 * time.Hour).UnixMilli()   // inside the 6 h window
	tooOld := now.Add(-8 * time.Hour).UnixMilli() // outside it
	const nSeries = 10
	tenants := []string{"site-a", "site-b"}
	exps := map[string]*rwExporter{}
	for _, tenant := range tenants {
		cfg := testConfig(t, c.write())
		cfg.Headers.Set("X-Scope-OrgID", configopaque.String(tenant))
		exps[tenant] = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	}
	push := func(tenant string, idx int, base int64) {
		require.NoError(t, exps[tenant].push(context.Background(), gaugeBatch(nSeries, idx, base)))
	}
	settled := func(tenant string, sent, dropped int64) func() bool {
		return func() bool {
			e := exps[tenant]
			return e.tel.sentTotal.Load() == sent && e.tel.droppedTotal.Load() == dropped
		}
	}
	for _, tenant := range tenants {
		push(tenant, 0, fresh)
		waitFor(t, 60*time.Second, tenant+": fresh batch", settled(tenant, nSeries, 0))
		push(tenant, 0, late)
		waitFor(t, 60*time.Second, tenant+": late batch", settled(tenant, 2*nSeries, 0))
	}
	push("site-a", 0, tooOld)
	waitFor(t, 60*time.Second, "site-a: too old batch rejected", settled("site-a", 2*nSeries, nSeries))
	push("site-a", 1, fresh-1000) // other values at the fresh timestamps
	waitFor(t, 60*time.Second, "site-a: conflicting values rejected", settled("site-a", 2*nSeries, 2*nSeries))
	push("site-b", 0, fresh)
	waitFor(t, 60*time.Second, "site-b: repeat taken", settled("site-b", 3*nSeries, 0))

	for _, tenant := range tenants {
		var got map[string][]model.SamplePair
		waitFor(t, 60*time.Second, tenant+" in Cortex", func() bool {
			got = c.samples(t, tenant, now)
			return countPairs(got) == 2*nSeries
		})
		require.Len(t, got, nSeries, tenant)
		for s := range nSeries {
			pairs := got[gaugeKey(s)]
			sort.Slice(pairs, func(i, j int) bool { return pairs[i].Timestamp < pairs[j].Timestamp })
			assert.Equal(t, []model.SamplePair{
				{Timestamp: model.Time(late), Value: model.SampleValue(s)},
				{Timestamp: model.Time(fresh), Value: model.SampleValue(s)},
			}, pairs, "%s series %d", tenant, s)
		}
	}
	assert.Zero(t, exps["site-a"].tel.refusedTotal.Load(), "a 400 is about the data, not a refusal to retry")
	assert.False(t, exps["site-a"].sendingHeld())
}
