package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/cmd/query"
	"github.com/edgetel/edgetel/internal/testing/charttest"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/s3test"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// exampleS3Endpoint is where examples/s3 expects its S3 server (bucket.yaml, config.yaml's
// default, the README's versitygw command).
const exampleS3Endpoint = "127.0.0.1:7070"

// examples/s3 as written: edgetelcol with config.yaml scrapes an edgesim node into the real S3
// server (versitygw on the example's address, credentials from AWS_* in the environment) with
// 1m blocks. S3 is SIGKILLed for 25 s around the cut of the second block (longer than the
// exporter's first retries; the internal/cmd/query test holds a longer outage), which waits on local
// disk and is uploaded when S3 is back. Then, with bucket.yaml, `thanos tools bucket verify` is
// clean and Thanos (store gateway + query) and edgetel-query answer the same over the bucket.
// Two to three minutes: blocks are cut in real time.
func TestS3ExampleAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("scrapes in real time for about two minutes")
	}
	thanos := thanostest.Bin(t)
	root := charttest.RepoRoot(t)
	srv := s3test.StartAt(t, "edgetel", exampleS3Endpoint)
	sim, err := edgesim.New(edgesim.Config{Nodes: 1, Seed: 7, Listen: "127.0.0.1:0", TLSDir: t.TempDir(), Direct: true, Step: 2 * time.Second})
	require.NoError(t, err)
	require.NoError(t, sim.Start(context.Background()))
	t.Cleanup(func() { _ = sim.Close() })
	node := sim.Fleet().Nodes[0]
	for k, v := range map[string]string{
		"NODE_NAME": node.Name, "NODE_IP": node.IP, "KUBELET_ENDPOINT": node.Direct,
		"SCRAPE_INTERVAL": "2s", "SCRAPE_TIMEOUT": "1s",
		"S3_INSECURE": "true", "AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey,
		"OBJSTORE_DIR": t.TempDir(), "BLOCK_DURATION": "1m", "UPLOAD_INTERVAL": "2s",
		"HEALTH_ENDPOINT": thanostest.FreeAddr(t), "TELEMETRY_PORT": port(t),
	} {
		t.Setenv(k, v)
	}
	stop := runCollector(t, filepath.Join(root, "examples", "s3", "config.yaml"))

	conf := filepath.Join(root, "examples", "s3", "bucket.yaml")
	y, err := os.ReadFile(conf)
	require.NoError(t, err)
	bkt, err := bucket.NewFromYAML(context.Background(), y, nil)
	require.NoError(t, err)
	blocks := func(n int, within time.Duration) []*bucket.Meta {
		var metas []*bucket.Meta
		require.Eventually(t, func() bool {
			metas, err = bucket.Blocks(context.Background(), bkt)
			return err == nil && len(metas) >= n
		}, within, time.Second, "%d blocks in the bucket", n)
		return metas
	}
	blocks(1, 3*time.Minute)
	// With 1m blocks, tsdb cuts block [m, m+1m) once the head reaches m+1m30s: kill S3 10 s before
	// the next such moment and start it again 15 s after, so that a block is cut while S3 is away.
	cut := time.Now().Truncate(time.Minute).Add(30 * time.Second)
	for time.Until(cut) < 12*time.Second {
		cut = cut.Add(time.Minute)
	}
	local := func() int {
		entries, err := os.ReadDir(filepath.Join(os.Getenv("OBJSTORE_DIR"), "tsdb"))
		require.NoError(t, err)
		n := 0
		for _, e := range entries {
			if e.IsDir() && len(e.Name()) == 26 { // a block's ULID
				n++
			}
		}
		return n
	}
	time.Sleep(time.Until(cut.Add(-10 * time.Second)))
	uploaded, cutBefore := len(blocks(1, time.Second)), local()
	srv.Kill()
	time.Sleep(time.Until(cut.Add(15 * time.Second)))
	assert.Equal(t, cutBefore+1, local(), "the block cut during the outage waits on local disk")
	srv.Restart()
	blocks(uploaded+1, time.Minute)
	stop()
	metas, err := bucket.Blocks(context.Background(), bkt)
	require.NoError(t, err)
	for i := 1; i < len(metas); i++ {
		// A block's minTime is its first sample: the next scrape after the previous block's end.
		gap := metas[i].MinTime - metas[i-1].MaxTime
		assert.True(t, gap >= 0 && gap < (2*time.Second).Milliseconds(), "block %d starts %d ms after block %d ends: no scrape missing across the outage", i, gap, i-1)
	}

	verify := thanostest.Run(t, thanos, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Empty(t, thanostest.Warnings(verify), "thanos tools bucket verify:\n%s", verify)

	start, end := time.UnixMilli(metas[0].MinTime), time.UnixMilli(metas[len(metas)-1].MaxTime-1)
	// Scrapes over the whole bucket (count_over_time drops the metric name: one metric only).
	const total = `sum(count_over_time(up[1h]))`
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+conf, "--data-dir="+t.TempDir())
	tq := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC)
	theirs := "http://" + tq.HTTP
	c := query.DefaultConfig()
	c.BucketConfig, c.Listen, c.CacheDir, c.SyncInterval = conf, "127.0.0.1:0", t.TempDir(), 200*time.Millisecond
	ours := runQuery(t, c)
	var want float64
	var last string
	require.Eventually(t, func() bool {
		a, err := thanostest.Query(t, theirs, total, end, nil)
		b, err2 := thanostest.Query(t, ours, total, end, nil)
		last = fmt.Sprintf("thanos %+v (%v), edgetel-query %+v (%v)", a, err, b, err2)
		if err != nil || err2 != nil || len(a.Vector) != 1 || len(b.Vector) != 1 {
			return false
		}
		want = float64(a.Vector[0].Value)
		return want > 0 && a.Vector[0].Value == b.Vector[0].Value
	}, time.Minute, 500*time.Millisecond, "thanos and edgetel-query count the same samples: %s", lazy(func() string { return last }))
	t.Logf("%d blocks, %g scrapes", len(metas), want)
	for _, q := range []string{`up`, `sum by (metrics_path) (count_over_time(up[1m]))`, `count by (__name__) ({__name__=~".+"})`} {
		a, err := thanostest.QueryRange(t, theirs, q, start, end, 15*time.Second, url.Values{"dedup": {"false"}})
		require.NoError(t, err, q)
		b, err := thanostest.QueryRange(t, ours, q, start, end, 15*time.Second, nil)
		require.NoError(t, err, q)
		require.NotEmpty(t, b.Matrix, q)
		assert.Equal(t, a.Matrix, b.Matrix, "thanos query and edgetel-query: %s", q)
	}
}

// lazy formats as f's result when the message is printed (after the wait, not before it).
type lazy func() string

func (l lazy) String() string { return l() }

func port(t *testing.T) string {
	_, p, err := net.SplitHostPort(thanostest.FreeAddr(t))
	require.NoError(t, err)
	return p
}

// runCollector runs the distribution in this process on a configuration file, as `edgetelcol
// --config <file>` does; the returned func stops it (also at the test's end).
func runCollector(t *testing.T, config string) func() {
	t.Helper()
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.NewDefaultBuildInfo(),
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{"file:" + config},
			ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), fileprovider.NewFactory(), yamlprovider.NewFactory()},
		}},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	require.Eventually(t, func() bool { return col.GetState() == otelcol.StateRunning }, time.Minute, 50*time.Millisecond,
		"the collector starts")
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		col.Shutdown()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

// runQuery runs edgetel-query in this process until the test ends and returns its base URL.
func runQuery(t *testing.T, c query.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- query.Run(ctx, c, nil, func(a net.Addr) { addrs <- a }) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	select {
	case a := <-addrs:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("edgetel-query: %v", err)
		return ""
	}
}
