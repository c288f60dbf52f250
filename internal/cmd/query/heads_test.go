package query

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/edgetel/edgetel/exporters/objstoreexporter"
	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// collectorHead runs the real objstore exporter (default 2h blocks, head_api on) with one
// block uploaded and the newest data only in its head. It returns the head API's URL, the
// bucket directory and the timestamps pushed for node edge-a.
func collectorHead(t *testing.T) (headURL, bucketDir string, pushed []time.Time) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := objstoreexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*objstoreexporter.Config)
	cfg.Directory = dir
	cfg.ExternalLabels = map[string]string{"cluster": "e2e"}
	cfg.UploadInterval = 100 * time.Millisecond
	srv := objstoreexporter.DefaultHeadAPIConfig()
	srv.NetAddr.Endpoint = freeAddr(t)
	cfg.HeadAPI = configoptional.Some(srv)
	exp, err := f.CreateMetrics(ctx, exportertest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })

	// 4.5 hours of `up`: tsdb cuts [t0, t0+2h) and keeps the rest in the head. edge-c appears
	// only in the last hour, so it is nowhere but in the head.
	t0 := time.Now().Add(-6 * time.Hour).Truncate(2 * time.Hour)
	for ts := t0; ts.Before(t0.Add(270 * time.Minute)); ts = ts.Add(time.Minute) {
		nodes := []string{"edge-a", "edge-b"}
		if ts.Sub(t0) >= 210*time.Minute {
			nodes = append(nodes, "edge-c")
		}
		require.NoError(t, exp.ConsumeMetrics(ctx, upMetrics(ts, nodes...)))
		pushed = append(pushed, ts)
	}
	bucketDir = filepath.Join(dir, bucket.DefaultDirName)
	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		metas, err := bucket.Blocks(ctx, bkt)
		require.NoError(t, err)
		return len(metas) == 1
	}, 60*time.Second, 50*time.Millisecond, "the exporter ships the first block")
	return "http://" + srv.NetAddr.Endpoint, bucketDir, pushed
}

// startQuery runs edgetel-query (Run) until the test ends and returns its base URL once its
// first bucket sync holds n blocks.
func startQuery(t *testing.T, c Config) string {
	t.Helper()
	c.Listen = "127.0.0.1:0"
	c.CacheDir = t.TempDir()
	c.SyncInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, nil, func(a net.Addr) { addrs <- a }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case a := <-addrs:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
		return ""
	}
}

// timestamps lists the sample times of a one-series matrix.
func timestamps(t *testing.T, m model.Matrix) []time.Time {
	t.Helper()
	require.Len(t, m, 1, "one series")
	var out []time.Time
	for _, p := range m[0].Values {
		out = append(out, p.Timestamp.Time())
	}
	return out
}

func TestQueryMergesCollectorHeads(t *testing.T) {
	headURL, bucketDir, pushed := collectorHead(t)
	newest := pushed[len(pushed)-1]
	c := DefaultConfig()
	c.BucketDir = bucketDir
	bucketOnly := startQuery(t, c)
	c.Heads.Endpoints = []string{headURL}
	merged := startQuery(t, c)

	// Wait for the first bucket sync: the block's samples answer.
	blockEnd := pushed[0].Add(2 * time.Hour)
	for _, base := range []string{bucketOnly, merged} {
		require.Eventually(t, func() bool {
			a, err := thanostest.Query(t, base, `up{node="edge-a"}`, blockEnd.Add(-time.Minute), nil)
			require.NoError(t, err)
			return len(a.Vector) == 1
		}, 20*time.Second, 50*time.Millisecond)
	}

	// The newest sample, pushed a moment ago and only in the collector's head.
	a, err := thanostest.Query(t, merged, `timestamp(up{job="kubeedge", node="edge-a"})`, newest.Add(time.Second), nil)
	require.NoError(t, err)
	require.Len(t, a.Vector, 1)
	assert.Equal(t, model.TimeFromUnixNano(newest.UnixNano()).Unix(), int64(a.Vector[0].Value))
	assert.Equal(t, model.LabelValue("e2e"), a.Vector[0].Metric["cluster"], "the head's external labels")
	assert.Empty(t, a.Warnings)
	a, err = thanostest.Query(t, bucketOnly, `up{node="edge-a"}`, newest.Add(time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, a.Vector, "without the head the newest data is missing")

	// A range across the upload boundary (block in the bucket and still on the collector's
	// disk, then the head): every pushed sample once.
	at := newest.Add(time.Second)
	a, err = thanostest.Query(t, merged, `up{node="edge-a"}[4h]`, at, nil)
	require.NoError(t, err)
	var want []time.Time
	for _, ts := range pushed {
		if ts.After(at.Add(-4 * time.Hour)) {
			want = append(want, ts.Truncate(time.Millisecond))
		}
	}
	got := timestamps(t, a.Matrix)
	assert.Equal(t, len(want), len(got), "samples")
	assert.True(t, slices.EqualFunc(want, got, time.Time.Equal), "each pushed sample once, in order")
	a, err = thanostest.Query(t, merged, `count_over_time(up{node="edge-a"}[4h])`, at, nil)
	require.NoError(t, err)
	require.Len(t, a.Vector, 1)
	assert.Equal(t, model.SampleValue(len(want)), a.Vector[0].Value)

	// Label queries see the head too (edge-c exists only there), external labels included.
	var nodes []string
	require.Equal(t, 200, getData(t, merged+"/api/v1/label/node/values", &nodes))
	assert.Equal(t, []string{"edge-a", "edge-b", "edge-c"}, nodes)
	require.Equal(t, 200, getData(t, bucketOnly+"/api/v1/label/node/values", &nodes))
	assert.Equal(t, []string{"edge-a", "edge-b"}, nodes)
	var clusters []string
	require.Equal(t, 200, getData(t, merged+`/api/v1/label/cluster/values?match[]=up{node="edge-c"}`, &clusters))
	assert.Equal(t, []string{"e2e"}, clusters)
}

// A head that is down: the answer still comes, from the bucket and the other heads, with a
// warning that names the missing head.
func TestQueryWarnsAboutAFailingHead(t *testing.T) {
	headURL, bucketDir, pushed := collectorHead(t)
	newest := pushed[len(pushed)-1]
	dead := "http://" + freeAddr(t)
	c := DefaultConfig()
	c.BucketDir = bucketDir
	c.Heads.Endpoints = []string{headURL, dead}
	base := startQuery(t, c)
	var a *thanostest.Answer
	require.Eventually(t, func() bool {
		var err error
		a, err = thanostest.Query(t, base, `count_over_time(up{node="edge-a"}[5h])`, newest.Add(time.Second), nil)
		require.NoError(t, err)
		return len(a.Vector) == 1 && int(a.Vector[0].Value) == len(pushed)
	}, 20*time.Second, 50*time.Millisecond, "bucket and the live head answer")
	require.NotEmpty(t, a.Warnings)
	assert.Contains(t, strings.Join(a.Warnings, "\n"), "collector head "+dead)
	assert.NotContains(t, strings.Join(a.Warnings, "\n"), headURL)

	var nodes []string
	require.Equal(t, 200, getData(t, base+"/api/v1/label/node/values", &nodes))
	assert.Equal(t, []string{"edge-a", "edge-b", "edge-c"}, nodes)
}

func TestHeadConfigErrors(t *testing.T) {
	c := DefaultConfig().Heads
	c.Endpoints = []string{"collector-0:9095", "ftp://x:1"}
	c.DNS = "no-port"
	c.Scheme = "gopher"
	c.Timeout = 0
	err := c.validate()
	require.Error(t, err)
	for _, want := range []string{`head endpoint "collector-0:9095"`, `head endpoint "ftp://x:1"`, `head DNS name "no-port"`, `head scheme "gopher"`, "head timeout"} {
		assert.ErrorContains(t, err, want)
	}
}

// DNS discovery: every address of the name is a head, re-resolved; static heads stay.
func TestHeadsFollowDNS(t *testing.T) {
	c := DefaultConfig().Heads
	c.Endpoints = []string{"http://static:9095"}
	c.DNS = "collectors.edgetel.svc:9095"
	h, err := NewHeads(c, nil)
	require.NoError(t, err)
	addrs := []string{"10.0.0.1", "fd00::2"}
	h.lookup = func(_ context.Context, host string) ([]string, error) {
		assert.Equal(t, "collectors.edgetel.svc", host)
		return addrs, nil
	}
	require.NoError(t, h.refresh(context.Background()))
	assert.Equal(t, []string{"http://10.0.0.1:9095", "http://[fd00::2]:9095", "http://static:9095"}, h.URLs())
	addrs = []string{"10.0.0.3"}
	require.NoError(t, h.refresh(context.Background()))
	assert.Equal(t, []string{"http://10.0.0.3:9095", "http://static:9095"}, h.URLs())
}

func getData(t *testing.T, u string, into any) int {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	pu.RawQuery = pu.Query().Encode()
	code, body := get(t, pu.Scheme+"://"+pu.Host, pu.Path+"?"+pu.RawQuery, nil, false)
	require.NoError(t, json.Unmarshal(decode(t, body).Data, into), body)
	return code
}
