package harness

import (
	"bytes"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url string, req *prompb.WriteRequest, encoding string) int {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	if encoding != "" {
		hr.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func series(name string, stamps ...int64) prompb.TimeSeries {
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "node", Value: "edge-1"}}}
	for _, s := range stamps {
		ts.Samples = append(ts.Samples, prompb.Sample{Value: 1, Timestamp: s})
	}
	return ts
}

func TestSinkCountsSamplesSeriesAndPairs(t *testing.T) {
	s, err := NewSink("", true)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	// b's 1000 arrives again (a resend), c's 500 after newer samples (a backlog); 0 is before the
	// sink's offsets start, so it is kept apart, and arrives twice too.
	t0 := time.Now().UnixMilli()
	require.Equal(t, http.StatusNoContent, post(t, s.URL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", t0+1000, t0+2000, t0+4000), series("b", t0+1000), series("c", t0+1000, t0+2000), series("d", 0),
	}}, "snappy"))
	require.Equal(t, http.StatusNoContent, post(t, s.URL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("b", t0+1000), series("c", t0+500), series("d", 0),
		{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{{Timestamp: 0}}},
	}}, ""))
	st := s.Stats()
	assert.Equal(t, Stats{Requests: 2, Samples: 11, Dupes: 2, Series: 5}, st)
	total, byNode := s.Delivered(func(string) bool { return true })
	assert.EqualValues(t, 3+1+3+1+1, total)
	assert.Equal(t, map[string]int64{"edge-1": 8, "": 1}, byNode, "h has no node label")
	assert.Equal(t, []string{"a", "b", "c", "d", "h"}, s.Names())

	s.Reset()
	assert.Equal(t, Stats{}, s.Stats())
	assert.Empty(t, s.Names())
}

func TestSinkWatchKeepsLabelsOfOneName(t *testing.T) {
	s, err := NewSink("", true)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	s.Watch("up", 1)
	down := series("up", 40)
	down.Samples[0].Value = 0
	require.Equal(t, http.StatusNoContent, post(t, s.URL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("up", 30, 10), series("a", 10), series("up", 20), down,
	}}, "snappy"))
	assert.Equal(t, map[string][]int64{`__name__="up",node="edge-1"`: {10, 20, 30}}, s.Watched(), "only up == 1 is kept")
}

func TestSinkDeliveredCountsDistinctPairsWithoutStaleMarkers(t *testing.T) {
	s, err := NewSink("", true)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	stale := series("a", 40)
	stale.Samples[0].Value = math.Float64frombits(value.StaleNaN)
	other := series("a", 10)
	other.Labels[1].Value = "edge-2"
	require.Equal(t, http.StatusNoContent, post(t, s.URL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", 10, 20), series("up", 10), stale, other,
	}}, "snappy"))
	require.Equal(t, http.StatusNoContent, post(t, s.URL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", 20, 30), // 20 again: a duplicate
	}}, "snappy"))
	total, byNode := s.Delivered(func(name string) bool { return name != "up" })
	assert.EqualValues(t, 4, total, "a at 10, 20 and 30 on edge-1, a at 10 on edge-2")
	assert.Equal(t, map[string]int64{"edge-1": 3, "edge-2": 1}, byNode)
	assert.EqualValues(t, 7, s.Stats().Samples, "the stale marker and the duplicate are samples received")
}

func TestSinkRefusesWhatItCannotRead(t *testing.T) {
	s, err := NewSink("", false)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", 1)}}
	// vmagent's own protocol first: it falls back to Prometheus remote write only on 415 or 400.
	assert.Equal(t, http.StatusUnsupportedMediaType, post(t, s.URL(), req, "zstd"))
	resp, err := http.Post(s.URL(), "application/x-protobuf", bytes.NewReader([]byte("not snappy at all")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	s.SetDown(http.StatusServiceUnavailable)
	assert.Equal(t, http.StatusServiceUnavailable, post(t, s.URL(), req, "snappy"))
	s.SetDown(0)
	s.SetErrors(map[int]float64{http.StatusTooManyRequests: 1})
	assert.Equal(t, http.StatusTooManyRequests, post(t, s.URL(), req, "snappy"))
	s.SetErrors(nil)
	assert.Equal(t, http.StatusNoContent, post(t, s.URL(), req, "snappy"))
	assert.Equal(t, Stats{Requests: 1, Rejected: 4, Samples: 1, Series: 1}, s.Stats())
}

func TestParseStatCPU(t *testing.T) {
	// comm with a space and a parenthesis; utime 250 and stime 50 ticks.
	stat := []byte("1234 (my (prog) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 10")
	cpu, err := parseStatCPU(stat)
	require.NoError(t, err)
	assert.InDelta(t, 3.0, cpu, 1e-9)
	_, err = parseStatCPU([]byte("garbage"))
	assert.Error(t, err)
}

func TestReadProcOfSelf(t *testing.T) {
	p, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, p.RSS)
	assert.GreaterOrEqual(t, p.HWM, p.RSS)
}
