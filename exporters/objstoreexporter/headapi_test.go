package objstoreexporter

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"gopkg.in/yaml.v2"

	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// startWithHeadAPI starts an exporter serving its head on a free loopback port and returns
// the API's base URL.
func startWithHeadAPI(t *testing.T, cfg *Config) (*objstoreExporter, string) {
	t.Helper()
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = "127.0.0.1:0"
	h := HeadAPIConfig{MaxQueriesPerRequest: defaultMaxQueriesPerRequest, MaxSamplesPerRequest: defaultMaxSamplesPerRequest}
	if cur := cfg.HeadAPI.Get(); cur != nil {
		h = *cur
	}
	h.ServerConfig = srv
	cfg.HeadAPI = configoptional.Some(h)
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e, "http://" + e.head.listener.String()
}

func getJSON(t *testing.T, u string, into any) int {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, into), "%s", body)
	return resp.StatusCode
}

// remoteReadQueryable reads the head API through Prometheus' own remote-read client.
func remoteReadQueryable(t *testing.T, base string, external map[string]string) storage.SampleAndChunkQueryable {
	t.Helper()
	u, err := url.Parse(base + "/api/v1/read")
	require.NoError(t, err)
	c, err := remote.NewReadClient("head", &remote.ClientConfig{
		URL: &config_util.URL{URL: u}, Timeout: model.Duration(30 * time.Second),
		HTTPClientConfig: config_util.DefaultHTTPClientConfig, ChunkedReadLimit: promconfig.DefaultChunkedReadLimit,
	})
	require.NoError(t, err)
	return remote.NewSampleAndChunkQueryableClient(c, labels.FromMap(external), nil, true,
		func() (int64, error) { return 0, nil })
}

func TestHeadAPIServesTheHead(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e, base := startWithHeadAPI(t, cfg)
	in := newDataset(3, t0, t0+30*time.Minute.Milliseconds())
	for _, md := range in.batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Empty(t, e.db.Blocks(), "all samples are still in the head")

	// Read back through Prometheus' remote-read client: it asks for the external labels as
	// matchers and strips them from the answer, so the series come back as pushed only when
	// the head API attached them.
	q := remoteReadQueryable(t, base, cfg.ExternalLabels)
	assertSameSamples(t, in.before(t0+hour), readSamples(t, q, t0, t0+hour), "remote read of the head")

	var conf struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/status/config", &conf))
	var parsed struct {
		Global struct {
			ExternalLabels map[string]string `yaml:"external_labels"`
		} `yaml:"global"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(conf.Data.YAML), &parsed))
	assert.Equal(t, cfg.ExternalLabels, parsed.Global.ExternalLabels)

	var build struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/status/buildinfo", &build))
	assert.Regexp(t, `^3\.\d+\.\d+$`, build.Data.Version)

	assert.Equal(t, float64(t0), lowestTimestamp(t, base)*1000)

	var names, values struct {
		Data []string `json:"data"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/labels", &names))
	assert.Equal(t, []string{"__name__", "instance", "job", "le", "sensor"}, names.Data)
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/label/sensor/values?match[]=edge_temp_celsius", &values))
	assert.Equal(t, []string{"0", "1", "2"}, values.Data)
	var series struct {
		Data []map[string]string `json:"data"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+`/api/v1/series?match[]=edge_temp_celsius{sensor="1"}&start=`+itoa(t0/1000)+"&end="+itoa(t0/1000+600), &series))
	assert.Equal(t, []map[string]string{{"__name__": "edge_temp_celsius", "sensor": "1", "job": "kubelet", "instance": "edge-1:10350"}}, series.Data)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// lowestTimestamp reads /metrics as Thanos' sidecar does (promclient.LowestTimestamp).
func lowestTimestamp(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	mf, ok := families["prometheus_tsdb_lowest_timestamp_seconds"]
	require.True(t, ok)
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// An empty TSDB reports what Prometheus reports, which the sidecar reads as "no lower bound";
// anything else would make it announce a minimum time in the far future and hide the head.
func TestHeadAPIEmptyHasNoLowerBound(t *testing.T) {
	_, base := startWithHeadAPI(t, testConfig(t.TempDir()))
	assert.Equal(t, float64(math.MaxInt64), 1000*lowestTimestamp(t, base))
}

func TestHeadAPIRefusesBadRequests(t *testing.T) {
	_, base := startWithHeadAPI(t, testConfig(t.TempDir()))
	var e struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	for path, want := range map[string]string{
		"/api/v1/series":                           "match[]: at least one selector",
		"/api/v1/series?match[]=up{":               "match[]:",
		"/api/v1/labels?start=yesterday":           "start:",
		"/api/v1/label/job/values?end=x":           "end:",
		"/api/v1/labels?limit=-1":                  "limit:",
		"/api/v1/series?match[]=up&limit=many":     "limit:",
		"/api/v1/label/job/values?match[]=%7Bx%3D": "match[]:",
	} {
		require.Equal(t, http.StatusBadRequest, getJSON(t, base+path, &e), path)
		assert.Equal(t, "error", e.Status, path)
		assert.Contains(t, e.Error, want, path)
	}
	resp, err := http.Post(base+"/api/v1/read", "application/x-protobuf", strings.NewReader("not snappy"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// A stock Thanos sidecar (shipping off) in front of the head API, behind a real Thanos Query:
// samples still in the exporter's head are answered, with the exporter's external labels.
func TestThanosSidecarServesTheHead(t *testing.T) {
	thanostest.Bin(t)
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e, base := startWithHeadAPI(t, cfg)
	// The sidecar starts beside an empty exporter, as in a collector pod; it reads the head's
	// time range only every 30s, so data pushed afterwards is answered at once only if the empty
	// head announced no lower bound.
	sidecar := thanostest.Start(t, "sidecar", true, "--prometheus.url="+base, "--tsdb.path="+t.TempDir())
	query := thanostest.Start(t, "query", true, "--endpoint="+sidecar.GRPC)
	end := t0 + 30*time.Minute.Milliseconds()
	for _, md := range newDataset(3, t0, end).batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Empty(t, e.db.Blocks(), "all samples are still in the head")

	at := time.UnixMilli(end - 1)
	var got *thanostest.Answer
	require.Eventually(t, func() bool {
		var err error
		got, err = thanostest.Query(t, "http://"+query.HTTP, `edge_temp_celsius{sensor="1"}`, at, nil)
		require.NoError(t, err)
		return len(got.Vector) > 0
	}, 15*time.Second, 200*time.Millisecond, "thanos query never saw the sidecar's series")
	require.Len(t, got.Vector, 1)
	assert.Equal(t, model.Metric{"__name__": "edge_temp_celsius", "sensor": "1", "job": "kubelet",
		"instance": "edge-1:10350", "cluster": "test", "site": "edge-1"}, got.Vector[0].Metric)
	k := float64((end - step.Milliseconds() - t0) / step.Milliseconds())
	assert.Equal(t, model.SampleValue(100+k*0.5), got.Vector[0].Value, "the newest pushed sample")

	// Every pushed sample of the range, once: 60 scrapes per series.
	got, err := thanostest.Query(t, "http://"+query.HTTP, `count_over_time(edge_packets_total[30m])`, at, nil)
	require.NoError(t, err)
	require.Len(t, got.Vector, 3)
	for _, s := range got.Vector {
		assert.Equal(t, model.SampleValue(60), s.Value, "%s", s.Metric)
	}
	// A matcher on an external label is answered by the sidecar, one that contradicts it is not.
	got, err = thanostest.Query(t, "http://"+query.HTTP, `count(edge_temp_celsius{site="edge-1"})`, at, nil)
	require.NoError(t, err)
	require.Len(t, got.Vector, 1)
	assert.Equal(t, model.SampleValue(3), got.Vector[0].Value)
	got, err = thanostest.Query(t, "http://"+query.HTTP, `edge_temp_celsius{site="edge-2"}`, at, nil)
	require.NoError(t, err)
	assert.Empty(t, got.Vector)
}

// bucketConfigFile writes cfg's bucket as a Thanos objstore config file.
func bucketConfigFile(t *testing.T, cfg *Config) string {
	t.Helper()
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, y, 0o600))
	return conf
}

// samplesOf flattens a matrix into dump lines without the external labels, as the data set
// lists them.
func samplesOf(m model.Matrix, external map[string]string) []string {
	var out []string
	for _, s := range m {
		b := labels.NewBuilder(labels.EmptyLabels())
		for n, v := range s.Metric {
			if _, ok := external[string(n)]; !ok {
				b.Set(string(n), string(v))
			}
		}
		ls := b.Labels().String()
		for _, p := range s.Values {
			out = append(out, point{ls, int64(p.Timestamp), float64(p.Value)}.String())
		}
	}
	return out
}

// One block uploaded and still on local disk (so in both the bucket and the head API), the
// newest data only in the head: Thanos Query over a store gateway and the sidecar returns every
// pushed sample of a range across the upload boundary exactly once, with and without
// deduplication.
func TestThanosQueryCountsEachSampleOnce(t *testing.T) {
	thanostest.Bin(t)
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e, base := startWithHeadAPI(t, cfg)
	bkt := openBucket(t, cfg)
	end := t0 + 4*hour
	in := newDataset(2, t0, end)
	for _, md := range in.batches {
		require.NoError(t, e.push(ctx, md))
	}
	metas := waitBlocks(t, bkt, 1)
	require.Equal(t, t0+2*hour, metas[0].MaxTime, "the first block is uploaded")
	require.Len(t, e.db.Blocks(), 1, "and still on local disk (local_retention)")
	require.Equal(t, t0+2*hour, e.db.Head().MinTime(), "the rest is in the head")

	store := thanostest.Start(t, "store", true, "--objstore.config-file="+bucketConfigFile(t, cfg),
		"--data-dir="+t.TempDir())
	sidecar := thanostest.Start(t, "sidecar", true, "--prometheus.url="+base, "--tsdb.path="+t.TempDir())
	storeOnly := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC)
	query := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC, "--endpoint="+sidecar.GRPC)

	// The store gateway alone has the uploaded block and nothing after it.
	at := time.UnixMilli(end - 1)
	got, err := thanostest.Query(t, "http://"+storeOnly.HTTP, `edge_packets_total[4h]`, at, nil)
	require.NoError(t, err)
	assertSameSamples(t, pointsOf(in, "edge_packets_total", end-1-4*hour, t0+2*hour-1), samplesOf(got.Matrix, cfg.ExternalLabels), "store gateway")

	want := pointsOf(in, "edge_packets_total", end-1-3*hour, end-1)
	for _, dedup := range []string{"true", "false"} {
		var got *thanostest.Answer
		require.Eventually(t, func() bool {
			var err error
			got, err = thanostest.Query(t, "http://"+query.HTTP, `edge_packets_total[3h]`, at, url.Values{"dedup": {dedup}})
			require.NoError(t, err)
			n := 0
			for _, s := range got.Matrix {
				n += len(s.Values)
			}
			return n >= len(want) // both endpoints answer
		}, time.Minute, 200*time.Millisecond, "thanos query never saw both endpoints")
		assert.Empty(t, got.Warnings)
		assertSameSamples(t, want, samplesOf(got.Matrix, cfg.ExternalLabels), "thanos query across the upload boundary, dedup="+dedup)
		for _, s := range got.Matrix {
			assert.Equal(t, model.LabelValue("test"), s.Metric["cluster"], "external labels on %s", s.Metric)
		}
	}
}

// pointsOf returns the data set's samples of one metric with from < t ≤ to (a range selector's
// window) as dump lines.
func pointsOf(d *dataset, name string, from, to int64) []string {
	var out []string
	for _, p := range d.expected {
		if p.t > from && p.t <= to && strings.Contains(p.series, `__name__="`+name+`"`) {
			out = append(out, p.String())
		}
	}
	return out
}
