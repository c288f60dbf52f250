package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// StoredJob is the job of the edge data in the chart's pipeline; its own metrics (job
// edgetelcol, the chart's self-monitoring) were never served by edgesim.
const StoredJob = "kubeedge"

// countStored counts the distinct (series, timestamp) pairs of edge data in a TSDB directory
// (blocks and WAL; the system must have stopped), staleness markers left out as the sink leaves
// them out: the delivered side of a system that stores instead of sending.
func countStored(ctx context.Context, dir string) (total int64, byNode map[string]int64, series int, err error) {
	db, err := tsdb.OpenDBReadOnly(dir, "", nil)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("querying %s: %w", dir, err)
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "job", StoredJob))
	byNode = map[string]int64{}
	var it chunkenc.Iterator
	for set.Next() {
		ls := set.At().Labels()
		if !Scraped(ls.Get(model.MetricNameLabel)) {
			continue
		}
		series++
		it = set.At().Iterator(it)
		n := int64(0)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt == chunkenc.ValFloat {
				if _, v := it.At(); value.IsStaleNaN(v) {
					continue
				}
			}
			n++
		}
		total += n
		byNode[ls.Get("node")] += n
	}
	return total, byNode, series, set.Err()
}

// OwnMetrics scrapes edgetelcol's own telemetry on 127.0.0.1:port: each metric summed over its
// series, and also by reason where it has one (name{reason=x}).
func OwnMetrics(port int) (map[string]float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil, fmt.Errorf("scraping edgetelcol: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		name, labels, _ := strings.Cut(series, "{")
		out[name] += v
		if strings.Contains(labels, `reason="`) {
			reason := labels[strings.Index(labels, `reason="`)+8:]
			reason = reason[:strings.IndexByte(reason, '"')]
			out[name+"{reason="+reason+"}"] += v
		}
	}
	return out, sc.Err()
}

// liveHeap is the heap in use at the last garbage collection of a Go program serving pprof at
// addr (its heap profile's inuse_space): what the program keeps, without the collector's
// headroom.
func liveHeap(ctx context.Context, addr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	p, err := profile.Parse(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, fmt.Errorf("heap profile has no inuse_space")
	}
	var total int64
	for _, s := range p.Sample {
		total += s.Value[idx]
	}
	return total, nil
}
