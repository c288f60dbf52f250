package remotewriteexporter

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// thanosReceive is a real Thanos Receive (EDGETEL_THANOS) started with the flags of
// examples/thanos-receive/receive.args (a 6 h out-of-order window, the THANOS-TENANT header), and
// a Thanos Query reading it.
type thanosReceive struct {
	write string // remote-write URL
	query string // Thanos Query's HTTP base URL
}

func newThanosReceive(t *testing.T) *thanosReceive {
	t.Helper()
	rw := thanostest.FreeAddr(t)
	args := append([]string{"--remote-write.address=" + rw, "--tsdb.path=" + t.TempDir()}, receiveArgs(t)...)
	recv := thanostest.Start(t, "receive", true, args...)
	q := thanostest.Start(t, "query", true, "--endpoint="+recv.GRPC)
	return &thanosReceive{write: "http://" + rw + "/api/v1/receive", query: "http://" + q.HTTP}
}

// samples returns, per tenant and series (gaugeKey form, external labels left out), the
// samples Thanos Query returns for the twelve hours before at.
// receiveArgs reads the example's Receive flags: one per line, # comments.
func receiveArgs(t *testing.T) []string {
	t.Helper()
	args := thanostest.ArgsFile(t, filepath.Join("..", "..", "examples", "thanos-receive", "receive.args"))
	require.Contains(t, args, "--tsdb.out-of-order.time-window=6h")
	return args
}

func (r *thanosReceive) samples(t *testing.T, at time.Time) map[string]map[string][]model.SamplePair {
	t.Helper()
	a, err := thanostest.Query(t, r.query, testMetric+"[12h]", at, url.Values{"dedup": {"false"}})
	if err != nil {
		return nil
	}
	byTenant := map[string]model.Matrix{}
	for _, s := range a.Matrix {
		tenant := string(s.Metric["tenant_id"])
		byTenant[tenant] = append(byTenant[tenant], s)
	}
	out := map[string]map[string][]model.SamplePair{}
	for tenant, m := range byTenant {
		out[tenant] = byGaugeKey(m)
	}
	return out
}

// byGaugeKey keys a query's series by gaugeKey's form (a store's own labels left out).
func byGaugeKey(m model.Matrix) map[string][]model.SamplePair {
	out := map[string][]model.SamplePair{}
	for _, s := range m {
		key := fmt.Sprintf(`%s{cluster="c1",instance="edge-1:10350",job="rwtest",series="%s"}`, testMetric, s.Metric["series"])
		out[key] = s.Values
	}
	return out
}

func countPairs(m map[string][]model.SamplePair) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// edgeremotewrite → real Thanos Receive, two tenants (THANOS-TENANT), over RW 1.0: a backlog
// inside the out-of-order window lands with its original timestamps; one older than the window
// and a changed value for a stored timestamp are refused by Receive (409): only those series
// are dropped, counted as rejected, never resent in a loop; a repeat of stored samples is taken.
// Everything is read back through Thanos Query, each sample once.
func TestThanosReceiveTenantsWindowAndConflicts(t *testing.T) {
	recv := newThanosReceive(t)
	testTenantsWindowAndConflicts(t, recv.write, "THANOS-TENANT", func(tenant string, at time.Time) map[string][]model.SamplePair {
		return recv.samples(t, at)[tenant]
	})
}

// testTenantsWindowAndConflicts runs the tenants, window and conflicts scenario against a real
// store with a 6 h out-of-order window that takes tenants in header and whose samples read
// returns (gaugeKey form).
func testTenantsWindowAndConflicts(t *testing.T, write, header string, read func(tenant string, at time.Time) map[string][]model.SamplePair) {
	now := time.Now().Truncate(time.Second)
	fresh := now.Add(-2 * time.Minute).UnixMilli()
	late := now.Add(-3 * time.Hour).UnixMilli()   // inside the 6 h window
	tooOld := now.Add(-8 * time.Hour).UnixMilli() // outside it
	const nSeries = 10
	tenants := []string{"site-a", "site-b"}
	exps := map[string]*rwExporter{}
	for _, tenant := range tenants {
		cfg := testConfig(t, write)
		cfg.Headers.Set(header, configopaque.String(tenant))
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
		push(tenant, 0, fresh) // the head
		waitFor(t, 60*time.Second, tenant+": fresh batch", settled(tenant, nSeries, 0))
		push(tenant, 0, late) // a backlog inside the window
		waitFor(t, 60*time.Second, tenant+": late batch", settled(tenant, 2*nSeries, 0))
	}
	// Tenant a only: data older than the window, and a value changed at a stored timestamp
	// (gaugeBatch idx 1 at fresh-1s has sample time fresh, values differ from idx 0's).
	push("site-a", 0, tooOld)
	waitFor(t, 60*time.Second, "site-a: too old batch rejected", settled("site-a", 2*nSeries, nSeries))
	push("site-a", 1, fresh-1000)
	waitFor(t, 60*time.Second, "site-a: conflicting values rejected", settled("site-a", 2*nSeries, 2*nSeries))
	// A repeat of stored samples (an at-least-once resend after a crash) is taken.
	push("site-b", 0, fresh)
	waitFor(t, 60*time.Second, "site-b: repeat taken", settled("site-b", 3*nSeries, 0))

	for _, tenant := range tenants {
		var got map[string][]model.SamplePair
		waitFor(t, 60*time.Second, tenant+" read back", func() bool {
			got = read(tenant, now)
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
	assert.Zero(t, exps["site-a"].tel.refusedTotal.Load(), "a refusal of the data is not a refusal to retry")
	assert.False(t, exps["site-a"].sendingHeld())
}

// examples/thanos-receive as written: its config.yaml's exporter and bearertokenauth extension
// (the token from a file, as a mounted Secret gives it) write to a Receive started with its
// receive.args; Thanos Query returns every sample under the tenant, with its timestamp, a
// backlog inside the window included.
func TestThanosReceiveExample(t *testing.T) {
	recv := newThanosReceive(t)
	token := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(token, []byte("s3cret\n"), 0o600))
	t.Setenv("REMOTE_WRITE_URL", recv.write)
	t.Setenv("TENANT", "site-7")
	t.Setenv("TOKEN_FILE", token)
	t.Setenv("BUFFER_DIR", t.TempDir())
	path, err := filepath.Abs(filepath.Join("..", "..", "examples", "thanos-receive", "config.yaml"))
	require.NoError(t, err)
	res, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:              []string{"file:" + path},
		ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
		DefaultScheme:     "env",
	})
	require.NoError(t, err)
	conf, err := res.Resolve(context.Background())
	require.NoError(t, err)
	sub, err := conf.Sub("exporters::edgeremotewrite")
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, 6*time.Hour, cfg.Buffer.maxAge(), "max_age follows Receive's window")
	extConf, err := conf.Sub("extensions::bearertokenauth/receive")
	require.NoError(t, err)
	id, ext := startExtension(t, bearertokenauthextension.NewFactory(), "receive", extConf.ToStringMap())
	require.Equal(t, cfg.Auth.Get().AuthenticatorID, id)

	cfg.ExternalLabels = map[string]string{"cluster": "c1"} // the key gaugeKey expects
	e := newExporter(cfg, settingsWithLogger(zap.NewNop()))
	require.NoError(t, e.start(context.Background(), extHost{id: ext}))
	t.Cleanup(func() { _ = e.shutdown(context.Background()) })
	now := time.Now().Truncate(time.Second)
	fresh, backlog := now.Add(-time.Minute).UnixMilli(), now.Add(-2*time.Hour).UnixMilli()
	const nSeries = 20
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, fresh)))
	waitFor(t, 60*time.Second, "the fresh batch", func() bool { return e.tel.sentTotal.Load() == nSeries })
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, backlog)))
	waitFor(t, 60*time.Second, "the backlog", func() bool { return e.tel.sentTotal.Load() == 2*nSeries })
	var got map[string]map[string][]model.SamplePair
	waitFor(t, 60*time.Second, "Thanos Query", func() bool {
		got = recv.samples(t, now)
		return countPairs(got["site-7"]) == 2*nSeries
	})
	for s := range nSeries {
		pairs := got["site-7"][gaugeKey(s)]
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].Timestamp < pairs[j].Timestamp })
		assert.Equal(t, []model.SamplePair{{Timestamp: model.Time(backlog), Value: model.SampleValue(s)},
			{Timestamp: model.Time(fresh), Value: model.SampleValue(s)}}, pairs, s)
	}
	assert.Zero(t, e.tel.droppedTotal.Load())
}

// Thanos Receive v0.42 reads an RW 2.0 request as RW 1.0, finds no series in it and answers
// 200 with nothing stored. The exporter takes the missing written-samples header as "not
// delivered": the data stays buffered and sending is held (protocol_version must be 1.0 for it).
func TestThanosReceiveRW2IsHeldNotLost(t *testing.T) {
	recv := newThanosReceive(t)
	cfg := testConfig(t, recv.write)
	cfg.ProtocolVersion = ProtocolV2
	cfg.Headers.Set("THANOS-TENANT", configopaque.String("rw2"))
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	now := time.Now().Truncate(time.Second)
	require.NoError(t, e.push(context.Background(), gaugeBatch(5, 0, now.Add(-time.Minute).UnixMilli())))
	waitFor(t, 30*time.Second, "sending held", e.sendingHeld)
	assert.Zero(t, e.tel.sentTotal.Load())
	assert.Zero(t, e.tel.droppedTotal.Load())
	assert.Empty(t, recv.samples(t, now)["rw2"], "Receive stored nothing of the RW 2.0 request")
}
