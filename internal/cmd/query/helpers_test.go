package query

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// fleet is the test data set: a few edge nodes in two regions, with the metric names the
// dashboards use.
type fleet struct {
	base   time.Time     // start of the first block, aligned to the hour
	blocks int           // number of consecutive one-hour blocks
	step   time.Duration // scrape interval
	// offset moves every timestamp and keeps the values: a second replica scraping the same
	// targets a little later.
	offset time.Duration
}

var testFleet = fleet{base: time.Now().Add(-5 * time.Hour).Truncate(time.Hour), blocks: 3, step: 15 * time.Second}

func (f fleet) end() time.Time { return f.base.Add(time.Duration(f.blocks) * time.Hour) }

type node struct{ name, region, site, group string }

var nodes = []node{
	{"edge-0", "eu", "eu-ams-1", "retail"},
	{"edge-1", "eu", "eu-ams-1", "retail"},
	{"edge-2", "eu", "eu-par-1", "factory"},
	{"edge-3", "us", "us-nyc-1", "retail"},
	{"edge-4", "us", "us-sfo-1", "factory"},
}

// appendBlock writes samples in [from, to) for every series.
func (f fleet) appendBlock(t testing.TB, app storage.AppenderV2, from, to time.Time) {
	t.Helper()
	for i, n := range nodes {
		base := []string{"job", "kubeedge", "instance", n.name, "node", n.name, "region", n.region, "site", n.site, "node_group", n.group}
		ls := func(name string, extra ...string) labels.Labels {
			return labels.FromStrings(append(append([]string{"__name__", name}, base...), extra...)...)
		}
		for ts := from; ts.Before(to); ts = ts.Add(f.step) {
			k := ts.Sub(f.base) / f.step
			ms := ts.Add(f.offset).UnixMilli()
			// edge-4 is flaky: down for 10 minutes of every hour, and it stops reporting
			// container metrics while down.
			down := n.name == "edge-4" && ts.Minute() >= 20 && ts.Minute() < 30
			add := func(l labels.Labels, v float64) {
				_, err := app.Append(0, l, 0, ms, v, nil, nil, storage.AppendV2Options{})
				require.NoError(t, err)
			}
			for p, path := range []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"} {
				mp := []string{"metrics_path", path}
				add(ls("up", mp...), boolf(!down))
				add(ls("scrape_duration_seconds", mp...), 0.01*float64(i+p+1)+0.001*float64(k%7))
				add(ls("scrape_samples_scraped", mp...), boolf(!down)*float64(100*(p+1)+i))
				if n.name == "edge-4" {
					add(ls("kubeedge_scrape_failures_total", "metrics_path", path, "reason", "transport"), float64(hours(ts, f.base)*40))
				}
			}
			add(ls("kubeedge_node_connected"), boolf(!down))
			add(ls("kubeedge_node_ready"), 1)
			add(ls("kubeedge_node_seconds_since_last_good_scrape"), float64(k%2)*15)
			disconnects := 0
			if n.name == "edge-4" {
				disconnects = hours(ts.Add(-20*time.Minute), f.base) + 1
			}
			add(ls("kubeedge_node_disconnects_total"), float64(disconnects))
			if down {
				continue
			}
			add(ls("node_cpu_usage_seconds_total", "metrics_path", "/metrics/resource"), float64(k)*0.9*float64(i+1))
			add(ls("node_memory_working_set_bytes", "metrics_path", "/metrics/resource"), float64(1<<30+i<<20)+float64(k%11)*8192)
			for c, container := range []string{"agent", "app"} {
				cl := []string{"container", container, "namespace", "edge", "pod", n.name + "-" + container, "metrics_path", "/metrics/resource"}
				add(ls("container_cpu_usage_seconds_total", cl...), float64(k)*0.25*float64(i+c+1)+math.Sin(float64(k)))
				add(ls("container_memory_working_set_bytes", cl...), float64(100<<20*(i+1)+c<<20)+float64(k%13)*4096)
			}
			for _, le := range []string{"0.1", "0.5", "1", "+Inf"} {
				v := float64(k) * float64(i+1)
				switch le {
				case "0.1":
					v *= 0.2
				case "0.5":
					v *= 0.7
				case "1":
					v *= 0.9
				}
				add(ls("edge_request_duration_seconds_bucket", "le", le), v)
			}
			_, err := app.Append(0, ls("edge_request_duration_native_seconds"), 0, ms, 0, tsdbutil.GenerateTestHistogram(int64(k)), nil, storage.AppendV2Options{})
			require.NoError(t, err)
		}
	}
}

// hours counts the whole hours from base to ts, at least 0.
func hours(ts, base time.Time) int { return max(int(ts.Sub(base)/time.Hour), 0) }

// appendSelfMetrics writes the collector's own telemetry, as its Prometheus endpoint names it.
func (f fleet) appendSelfMetrics(t testing.TB, app storage.AppenderV2, from, to time.Time) {
	t.Helper()
	ls := func(name string, extra ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", name, "job", "edgetel", "instance", "collector-0"}, extra...)...)
	}
	for ts := from; ts.Before(to); ts = ts.Add(f.step) {
		k := float64(ts.Sub(f.base) / f.step)
		for _, s := range []struct {
			l labels.Labels
			v float64
		}{
			{ls("otelcol_exporter_edgeremotewrite_buffer_bytes"), 4096 + float64(int(k)%5)*1024},
			{ls("otelcol_exporter_edgeremotewrite_buffer_disk_bytes"), 1 << 20},
			{ls("otelcol_exporter_edgeremotewrite_oldest_sample_age_seconds"), 2 + float64(int(k)%3)},
			{ls("otelcol_exporter_edgeremotewrite_samples_dropped"), k / 10},
			{ls("otelcol_exporter_objstore_upload_lag"), float64(int(k) % 240 * 15)},
			{ls("otelcol_exporter_objstore_upload_failures"), float64(int(k) / 100)},
			{ls("otelcol_exporter_objstore_blocks_uploaded"), float64(int(k) / 240)},
			{ls("otelcol_exporter_objstore_samples_dropped", "reason", "out_of_order"), k},
			{ls("otelcol_receiver_kubeedge_scrape_failures"), k * 3},
		} {
			_, err := app.Append(0, s.l, 0, ts.UnixMilli(), s.v, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
		}
		f.appendCloudcore(t, app, ts, k)
	}
}

// appendCloudcore writes what the chart's cloudcore scrape (job cloudcore) finds on two
// cloudcore replicas holding the fleet's tunnels between them.
func (f fleet) appendCloudcore(t testing.TB, app storage.AppenderV2, ts time.Time, k float64) {
	t.Helper()
	for r, instance := range []string{"cloudcore-0:9091", "cloudcore-1:9091"} {
		ls := func(name string) labels.Labels {
			return labels.FromStrings("__name__", name, "job", "cloudcore", "instance", instance)
		}
		for _, s := range []struct {
			l labels.Labels
			v float64
		}{
			{ls(cloudcoreMetrics[0]), float64(len(nodes)/2 + r*(len(nodes)%2))},
			{ls("process_cpu_seconds_total"), k * 0.1 * float64(r+1)},
			{ls("process_resident_memory_bytes"), float64(200<<20 + r<<20)},
		} {
			_, err := app.Append(0, s.l, 0, ts.UnixMilli(), s.v, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
		}
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeBlocks writes the fleet as one-hour blocks into dir and returns their ULIDs.
func (f fleet) writeBlocks(t testing.TB, dir string) []ulid.ULID {
	t.Helper()
	ctx := context.Background()
	var ids []ulid.ULID
	for b := range f.blocks {
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, time.Hour.Milliseconds())
		require.NoError(t, err)
		app := w.AppenderV2(ctx)
		from := f.base.Add(time.Duration(b) * time.Hour)
		f.appendBlock(t, app, from, from.Add(time.Hour))
		f.appendSelfMetrics(t, app, from, from.Add(time.Hour))
		require.NoError(t, app.Commit())
		id, err := w.Flush(ctx)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		ids = append(ids, id)
	}
	return ids
}

// uploadRaw copies a block directory into the bucket as-is, meta.json last.
func uploadRaw(t testing.TB, bkt objstore.Bucket, blockDir string) {
	t.Helper()
	ctx := context.Background()
	id := filepath.Base(blockDir)
	require.NoError(t, objstore.UploadDir(ctx, bucket.GoKitLogger(nil), bkt, filepath.Join(blockDir, bucket.ChunksDirname), path.Join(id, bucket.ChunksDirname)))
	require.NoError(t, objstore.UploadFile(ctx, bucket.GoKitLogger(nil), bkt, filepath.Join(blockDir, bucket.IndexFilename), path.Join(id, bucket.IndexFilename)))
	require.NoError(t, objstore.UploadFile(ctx, bucket.GoKitLogger(nil), bkt, filepath.Join(blockDir, bucket.MetaFilename), path.Join(id, bucket.MetaFilename)))
}

// fsBucket is a real FILESYSTEM bucket in a test directory.
func fsBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return bkt
}

// copyDir copies a block directory tree.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
}

// freeAddr returns a free loopback address.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startPrometheus runs a real Prometheus over a data directory holding the given blocks, on
// loopback, with no scrape targets and a retention that keeps old blocks.
func startPrometheus(t testing.TB, blockDirs []string) string {
	t.Helper()
	bin := testprog.Path(t, "EDGETEL_PROMETHEUS", "tool-prometheus")

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, b := range blockDirs {
		copyDir(t, b, filepath.Join(data, filepath.Base(b)))
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644))
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address="+addr,
	)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", out)
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 200*time.Millisecond, "prometheus did not become ready")
	return base
}

// get issues a GET (or a form POST when form is true) and returns status and body.
func get(t testing.TB, base, p string, params url.Values, form bool) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if form {
		resp, err = http.Post(base+p, "application/x-www-form-urlencoded", strings.NewReader(params.Encode()))
	} else {
		u := base + p
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
		resp, err = http.Get(u)
	}
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func unix(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }
