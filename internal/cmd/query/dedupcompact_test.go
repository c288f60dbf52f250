package query

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// dedupLabels are the labels the chart hands every reader and the compactor as replica labels.
var dedupLabels = []string{"replica", "shard"}

// uploadReplica uploads the fleet's one-hour blocks, but those numbered in skip, with the given
// Thanos external labels, as one collector of a replicated shard writes them.
func uploadReplica(t *testing.T, bucketDir string, f fleet, ext map[string]string, skip ...int) {
	t.Helper()
	ctx := context.Background()
	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	dir := t.TempDir()
	for i, id := range f.writeBlocks(t, dir) {
		if slices.Contains(skip, i) {
			continue
		}
		block := filepath.Join(dir, id.String())
		m, err := bucket.ReadMetaFromDir(block)
		require.NoError(t, err)
		m.Thanos = bucket.Thanos{Version: bucket.ThanosVersion1, Source: "sidecar", Labels: ext}
		require.NoError(t, m.FillFiles(block))
		require.NoError(t, bucket.Upload(ctx, bkt, block, m, nil))
	}
}

// rawQueries count the samples of every series per scrape round (15 s) and per minute: a
// doubled or a missing sample changes them.
var rawQueries = []string{
	`count_over_time(up[15s])`,
	`count_over_time(kubeedge_node_seconds_since_last_good_scrape[1m])`,
	`count_over_time(container_cpu_usage_seconds_total[15s])`,
	`count_over_time(process_resident_memory_bytes[1m])`,
	`count_over_time(edge_request_duration_native_seconds[1m])`,
}

// promqlSet answers the raw queries and the shipped dashboards' expressions.
func promqlSet(t *testing.T, base string, f fleet, extra url.Values) map[string]model.Matrix {
	t.Helper()
	exprs := map[DashboardQuery]string{}
	for q, e := range parsedDashboardQueries(t) {
		exprs[q] = e.String()
	}
	out := dashboardAnswers(t, base, f, exprs, extra)
	for _, q := range rawQueries {
		a, err := thanostest.QueryRange(t, base, q, f.base, f.end(), 15*time.Second, extra)
		require.NoError(t, err, q)
		out[q] = a.Matrix
	}
	return out
}

// readers starts a store gateway with Thanos Query and an edgetel-query on the bucket, both
// deduplicating on dedupLabels, once each has loaded the bucket's blocks blocks, and returns their
// answers to the PromQL set and their deduplicated raw samples.
func readers(t *testing.T, bucketDir, conf string, f fleet, blocks int) (ours, theirs map[string]model.Matrix, oursRaw, theirsRaw model.Matrix) {
	t.Helper()
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+conf, "--data-dir="+t.TempDir())
	args := []string{"--endpoint=" + store.GRPC}
	for _, l := range dedupLabels {
		args = append(args, "--query.replica-label="+l)
	}
	query := thanostest.Start(t, "query", true, args...)
	thanos := "http://" + query.HTTP
	require.Eventually(t, func() bool {
		return sampleCount(t, thanos, f.end(), nil) > 0
	}, time.Minute, 200*time.Millisecond, "thanos query sees the store gateway")
	c := DefaultConfig()
	c.BucketDir = bucketDir
	c.ReplicaLabels = dedupLabels
	base := startQuery(t, c)
	require.Eventually(t, func() bool {
		return cachedBlocks(t, base) == blocks
	}, time.Minute, 100*time.Millisecond, "edgetel-query loaded the %d blocks", blocks)
	raw := func(base string) model.Matrix {
		a, err := thanostest.Query(t, base, syncedQuery, f.end(), nil)
		require.NoError(t, err)
		return a.Matrix
	}
	return promqlSet(t, base, f, nil), promqlSet(t, thanos, f, nil), raw(base), raw(thanos)
}

// cachedBlocks reads edgetel-query's edgetel_query_cached_blocks.
func cachedBlocks(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "edgetel_query_cached_blocks "); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	return -1
}

// rounds maps each series (without replica labels) to the scrape rounds holding its samples and
// how many samples each round holds.
func rounds(m model.Matrix, f fleet) map[string]map[int64]int {
	out := map[string]map[int64]int{}
	for _, s := range m {
		ls := s.Metric.Clone()
		for _, l := range dedupLabels {
			delete(ls, model.LabelName(l))
		}
		k := ls.String()
		if out[k] == nil {
			out[k] = map[int64]int{}
		}
		for _, p := range s.Values {
			out[k][int64(p.Timestamp.Time().Sub(f.base)/f.step)]++
		}
		for _, p := range s.Histograms {
			out[k][int64(p.Timestamp.Time().Sub(f.base)/f.step)]++
		}
	}
	return out
}

// pointIndex maps each series, without the replica labels, to its points' values as text.
func pointIndex(m model.Matrix) map[string]map[model.Time]string {
	out := map[string]map[model.Time]string{}
	for _, s := range m {
		ls := s.Metric.Clone()
		for _, l := range dedupLabels {
			delete(ls, model.LabelName(l))
		}
		ps := out[ls.String()]
		if ps == nil {
			ps = map[model.Time]string{}
			out[ls.String()] = ps
		}
		for _, p := range s.Values {
			ps[p.Timestamp] = p.Value.String()
		}
		for _, p := range s.Histograms {
			ps[p.Timestamp] = p.Histogram.String()
		}
	}
	return out
}

// diffPoints counts the points of two answers and those that differ (bit for bit, or present in
// one only), and describes the first few differences.
func diffPoints(want, got model.Matrix) (points, differ int, first []string) {
	w, g := pointIndex(want), pointIndex(got)
	for s := range g {
		if w[s] == nil {
			w[s] = map[model.Time]string{}
		}
	}
	for s, ps := range w {
		seen := maps.Clone(ps)
		maps.Copy(seen, g[s])
		for ts := range seen {
			points++
			if wv, ok := ps[ts]; !ok || wv != g[s][ts] {
				differ++
				if len(first) < 5 {
					first = append(first, fmt.Sprintf("%s at %v: %q -> %q", s, ts.Time().UTC().Format(time.TimeOnly), ps[ts], g[s][ts]))
				}
			}
		}
	}
	return points, differ, first
}

// missingFrom checks that got holds only points of want, with want's values, and counts those
// it lacks.
func missingFrom(t *testing.T, want, got model.Matrix) int {
	t.Helper()
	w, g := pointIndex(want), pointIndex(got)
	missing := 0
	for s, ps := range w {
		for ts, v := range ps {
			gv, ok := g[s][ts]
			if !ok {
				missing++
				continue
			}
			assert.Equal(t, v, gv, "%s at %v", s, ts)
		}
	}
	for s, ps := range g {
		for ts := range ps {
			assert.Contains(t, w[s], ts, "%s: a sample at %v the other answer lacks", s, ts)
		}
	}
	return missing
}

// Two replicas of a shard in a FILESYSTEM bucket, as two HA collectors write it: external labels
// that differ only in `replica`, the second scraping 4 s after the first, the first away for the
// first hour and the second away for the second. Real `thanos compact` with
// --deduplication.replica-label (replica and shard, as the chart runs it) and
// --deduplication.func=penalty (which turns vertical compaction on) leaves one copy: blocks that
// do not overlap and carry no replica label, one replica's series, exactly one sample in every
// scrape round either replica had, each replica's gap filled by the other. "The same answers":
// the compacted blocks hold bit for bit the raw samples Thanos Query answered deduplicated before;
// Thanos Query answers the PromQL set (raw sample counts per round, the shipped dashboards'
// expressions) bit for bit the same before and after; after compaction edgetel-query answers as
// Thanos Query does (to 1e-9). Before compaction edgetel-query lacks the handover samples (see
// below), so its answers around the two handovers change with compaction; the test prints how many.
func TestCompactorDeduplicationKeepsAnswers(t *testing.T) {
	compactorDedup(t, writer{map[string]string{"cluster": "fleet", "replica": "0"}, 0, []int{0}},
		writer{map[string]string{"cluster": "fleet", "replica": "1"}, 4 * time.Second, []int{1}})
}

// A node moves from shard 0 to shard 2 (a reshard): its old collector wrote blocks with the
// label the chart used before (shard="0") for the first three hours, its new one (replica="2")
// from the third hour on, the two scraping it both during the third hour. Deduplicating on
// replica and shard, Thanos Query answers one series per node with one sample per round, the
// compactor merges the two writers' blocks into exactly those samples, and Thanos Query answers
// the same before and after. The last hour, which only the new collector has and no block
// overlaps, is the newest block: the compactor leaves it, and its replica label, until newer ones
// come; edgetel-query's merge at the handover between it and the compacted series differs from
// Thanos Query's as before compaction (the test prints by how much).
func TestCompactorDeduplicationJoinsAReshard(t *testing.T) {
	compactorDedup(t, writer{map[string]string{"cluster": "fleet", "shard": "0"}, 0, []int{3}},
		writer{map[string]string{"cluster": "fleet", "replica": "2"}, 4 * time.Second, []int{0, 1}})
}

// writer is one collector's blocks of the test fleet: its external labels, how much later than
// the fleet's rounds it scrapes, and the hours it was away.
type writer struct {
	labels map[string]string
	offset time.Duration
	skip   []int
}

// compactorDedup writes a's and b's blocks, answers the PromQL set from both readers, runs the
// compactor as the chart does and checks the bucket and the answers after.
func compactorDedup(t *testing.T, a, b writer) {
	bin := thanostest.Bin(t)
	ctx := context.Background()
	f := fleet{base: time.Now().Add(-9 * time.Hour).Truncate(2 * time.Hour), blocks: 4, step: 15 * time.Second}
	bucketDir := t.TempDir()
	uploaded := 0
	for _, w := range []writer{a, b} {
		g := f
		g.offset = w.offset
		uploadReplica(t, bucketDir, g, w.labels, w.skip...)
		uploaded += f.blocks - len(w.skip)
	}
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig: {directory: "+bucketDir+"}\n"), 0o600))

	// Both writers as stored: the rounds each series has data in, in either.
	c := DefaultConfig()
	c.BucketDir = bucketDir
	plain := startQuery(t, c)
	require.Eventually(t, func() bool { return cachedBlocks(t, plain) == uploaded },
		time.Minute, 100*time.Millisecond, "edgetel-query loaded the %d blocks", uploaded)
	a0, err := thanostest.Query(t, plain, syncedQuery, f.end(), nil)
	require.NoError(t, err)
	stored := a0.Matrix
	either := rounds(stored, f)

	oursBefore, theirsBefore, oursRawBefore, theirsRawBefore := readers(t, bucketDir, conf, f, uploaded)

	args := []string{"compact", "--objstore.config-file=" + conf, "--data-dir=" + t.TempDir(),
		"--http-address=" + thanostest.FreeAddr(t), "--deduplication.func=penalty",
		"--consistency-delay=0s", "--delete-delay=0s"} // --wait is off by default: one pass
	for _, l := range dedupLabels {
		args = append(args, "--deduplication.replica-label="+l)
	}
	log := thanostest.Run(t, bin, args...)
	assert.Contains(t, log, "enabling vertical compaction", "a replica label turns vertical compaction on")
	verify := thanostest.Run(t, bin, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Empty(t, thanostest.Warnings(verify), "bucket verify after compaction:\n%s", verify)

	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	metas, err := bucket.Blocks(ctx, bkt)
	require.NoError(t, err)
	require.NotEmpty(t, metas)
	untouched := 0
	for i, m := range metas {
		t.Logf("after: block [%s, %s] level %d from %d blocks, external labels %v", time.UnixMilli(m.MinTime).UTC().Format(time.TimeOnly),
			time.UnixMilli(m.MaxTime-1).UTC().Format(time.TimeOnly), m.Compaction.Level, len(m.Compaction.Sources), m.Thanos.Labels)
		if i > 0 {
			assert.LessOrEqual(t, metas[i-1].MaxTime, m.MinTime, "block %s overlaps the one before", m.ULID)
		}
		if !maps.Equal(map[string]string{"cluster": "fleet"}, m.Thanos.Labels) {
			// Never compacted: the newest block, which no other overlaps.
			untouched++
			assert.Equal(t, 1, m.Compaction.Level, "block %s: external labels %v", m.ULID, m.Thanos.Labels)
			assert.Equal(t, len(metas)-1, i, "block %s: external labels %v", m.ULID, m.Thanos.Labels)
		}
	}

	// One copy: a reader that does not deduplicate sees one replica's series, and every round in
	// which either replica had data holds exactly one sample.
	plainAfter := startQuery(t, c)
	var compacted model.Matrix
	require.Eventually(t, func() bool {
		compacted = nil
		if cachedBlocks(t, plainAfter) != len(metas) {
			return false
		}
		a, err := thanostest.Query(t, plainAfter, syncedQuery, f.end(), nil)
		require.NoError(t, err)
		compacted = a.Matrix
		return true
	}, time.Minute, 100*time.Millisecond, "edgetel-query loaded the compacted blocks")
	assert.Len(t, distinctSeries(compacted), len(either), "series after compaction: one writer's")
	if untouched == 0 {
		assert.Len(t, compacted, len(either), "series after compaction: one writer's")
	}
	after := rounds(compacted, f)
	var roundsEither, doubled, missing int
	for s, rs := range either {
		for r := range rs {
			roundsEither++
			switch n := after[s][r]; {
			case n > 1:
				doubled++
			case n == 0:
				missing++
			}
		}
		for r := range after[s] {
			assert.Contains(t, rs, r, "%s: a sample in round %d where neither replica had one", s, r)
		}
	}
	t.Logf("before: %d blocks, %d series (2 writers); after: %d blocks, %d series; of %d (series, round) with data in either writer, %d hold one sample, %d two or more, %d none",
		uploaded, len(stored), len(metas), len(distinctSeries(compacted)), roundsEither, roundsEither-doubled-missing, doubled, missing)
	assert.Zero(t, doubled, "rounds with two samples after compaction")
	assert.Zero(t, missing, "rounds without a sample after compaction")
	points, differ, first := diffPoints(theirsRawBefore, compacted)
	t.Logf("raw samples: the compacted blocks' against Thanos Query's deduplicated answer before: %d of %d differ", differ, points)
	assert.Zero(t, differ, "the compactor keeps what Thanos Query answered: %s", strings.Join(first, "; "))
	// Before compaction edgetel-query splits the replicas' chunks into runs that do not overlap
	// and penalty-merges only where chunks overlap, as Thanos Query does (pkg/dedup
	// NewOverlapSplit): where one replica's chunks end and the other's begin without overlap (a
	// handover after a gap), both keep every sample.
	lacking := missingFrom(t, theirsRawBefore, oursRawBefore)
	t.Logf("raw samples before compaction: Thanos Query %d, edgetel-query %d", count(theirsRawBefore), count(oursRawBefore))
	assert.Zero(t, lacking, "raw samples before compaction that edgetel-query lacks")
	assert.Equal(t, count(theirsRawBefore), count(oursRawBefore), "raw samples before compaction")

	oursAfter, theirsAfter, _, _ := readers(t, bucketDir, conf, f, len(metas))
	keys := slices.Sorted(maps.Keys(oursBefore))
	var total, thanosDiffer, oursDiffer, oursThanosAfter int
	for _, k := range keys {
		points, differ, first := diffPoints(theirsBefore[k], theirsAfter[k])
		total += points
		thanosDiffer += differ
		if differ > 0 {
			t.Logf("thanos query before/after %s: %d of %d points differ, e.g. %s", k, differ, points, strings.Join(first, "; "))
		}
		if untouched == 0 {
			// One series left per node: nothing to deduplicate, the readers agree.
			assertCloseMatrix(t, theirsAfter[k], oursAfter[k], "after compaction, edgetel-query and thanos query: %s", k)
		} else {
			// The untouched block's series still meets the compacted one at a handover.
			_, differ, _ := diffPoints(theirsAfter[k], oursAfter[k])
			oursThanosAfter += differ
		}
		points, differ, first = diffPoints(oursBefore[k], oursAfter[k])
		oursDiffer += differ
		if differ > 0 {
			t.Logf("edgetel-query before/after %s: %d of %d points differ, e.g. %s", k, differ, points, strings.Join(first, "; "))
		}
	}
	t.Logf("PromQL set (%d expressions, %d points): Thanos Query before/after compaction %d differ, edgetel-query %d; after, edgetel-query and Thanos Query %d",
		len(keys), total, thanosDiffer, oursDiffer, oursThanosAfter)
	assert.Zero(t, thanosDiffer, "thanos query answers bit for bit the same before and after compaction")
}

// distinctSeries lists the series of a matrix without their replica labels.
func distinctSeries(m model.Matrix) map[string]bool {
	out := map[string]bool{}
	for s := range rounds(m, fleet{step: time.Second}) {
		out[s] = true
	}
	return out
}

func count(m model.Matrix) int {
	n := 0
	for _, s := range m {
		n += len(s.Values) + len(s.Histograms)
	}
	return n
}
