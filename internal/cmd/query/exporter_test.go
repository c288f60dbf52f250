package query

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/exporters/objstoreexporter"
	"github.com/edgetel/edgetel/internal/bucket"
)

// TestServesObjstoreExporterBlocks runs the real objstore exporter into a FILESYSTEM bucket and
// queries what it shipped: the exporter's blocks, with its external labels, answer PromQL.
func TestServesObjstoreExporterBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := objstoreexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*objstoreexporter.Config)
	cfg.Directory = dir
	cfg.ExternalLabels = map[string]string{"cluster": "e2e"}
	cfg.UploadInterval = 100 * time.Millisecond
	exp, err := f.CreateMetrics(ctx, exportertest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))

	// Seven hours of `up` for three nodes, in the past: the exporter cuts the first 2h blocks.
	t0 := time.Now().Add(-12 * time.Hour).Truncate(2 * time.Hour)
	step := time.Minute
	for ts := t0; ts.Before(t0.Add(7 * time.Hour)); ts = ts.Add(step) {
		require.NoError(t, exp.ConsumeMetrics(ctx, upMetrics(ts, "edge-a", "edge-b", "edge-c")))
	}
	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": filepath.Join(dir, bucket.DefaultDirName)}}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		metas, err := bucket.Blocks(ctx, bkt)
		require.NoError(t, err)
		return len(metas) >= 2
	}, 60*time.Second, 50*time.Millisecond, "the exporter ships two blocks")
	require.NoError(t, exp.Shutdown(ctx))

	store := newStore(t, bkt, t.TempDir(), 1<<30)
	require.NoError(t, store.Sync(ctx))
	require.GreaterOrEqual(t, len(store.Blocks()), 2)
	srv := serve(t, edgetelHandler(t, store, Options{Engine: DefaultEngineOptions}))

	at := unix(t0.Add(3 * time.Hour))
	code, body := get(t, srv, "/api/v1/query", v("query", `count(count by (node) (up{job="kubeedge"} == 1))`, "time", at), false)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "3", vectorValue(t, body))
	code, body = get(t, srv, "/api/v1/query", v("query", `count(up{cluster="e2e", node="edge-b"})`, "time", at), false)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "1", vectorValue(t, body), "the exporter's external labels are on the series")
	code, body = get(t, srv, "/api/v1/label/cluster/values", nil, false)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `["e2e"]`, string(decode(t, body).Data))
}

// upMetrics is one scrape's `up` per node, as the kubeedge receiver hands it on.
func upMetrics(ts time.Time, nodes ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for _, n := range nodes {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "kubeedge")
		rm.Resource().Attributes().PutStr("service.instance.id", n)
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("up")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetDoubleValue(1)
		dp.Attributes().PutStr("node", n)
	}
	return md
}
