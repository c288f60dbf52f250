package objstoreexporter

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/gate"
)

// maxReadRequestBytes bounds a remote-read request's body, compressed and decoded, as
// Prometheus' handler does.
const maxReadRequestBytes = 32 << 20

// boundedRead is Prometheus' remote-read handler with a bound per request: at most
// max_queries_per_request queries, which share max_samples_per_request (Prometheus' own
// limit applies to each query of a request separately).
type boundedRead struct {
	gate       *gate.Gate
	maxQueries int
	// byQueries[n] serves a request of n queries: its per-query sample limit is the request's
	// bound divided by n.
	byQueries []http.Handler
}

func newBoundedRead(logger *slog.Logger, q storage.SampleAndChunkQueryable, cfg config.Config, hc *HeadAPIConfig) *boundedRead {
	b := &boundedRead{gate: gate.New(readConcurrency), maxQueries: hc.MaxQueriesPerRequest,
		byQueries: make([]http.Handler, hc.MaxQueriesPerRequest+1)}
	for n := 1; n <= hc.MaxQueriesPerRequest; n++ {
		b.byQueries[n] = remote.NewReadHandler(logger, nil, q, func() config.Config { return cfg },
			hc.MaxSamplesPerRequest/n, readConcurrency, readMaxBytesInFrame)
	}
	return b
}

func (b *boundedRead) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := b.gate.Start(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer b.gate.Done()
	body, n, err := countQueries(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n > b.maxQueries {
		http.Error(w, fmt.Sprintf("%d queries in one remote-read request: at most %d (max_queries_per_request)", n, b.maxQueries), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	b.byQueries[max(n, 1)].ServeHTTP(w, r)
}

// countQueries reads a snappy-compressed ReadRequest and returns its body (for the handler,
// which decodes it again) and its number of queries.
func countQueries(r io.Reader) ([]byte, int, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxReadRequestBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxReadRequestBytes {
		return nil, 0, fmt.Errorf("remote-read request over %d bytes", maxReadRequestBytes)
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, 0, fmt.Errorf("remote-read request: %w", err)
	}
	if n > maxReadRequestBytes {
		return nil, 0, fmt.Errorf("remote-read request decodes to %d bytes, over %d", n, maxReadRequestBytes)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, 0, fmt.Errorf("remote-read request: %w", err)
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, 0, fmt.Errorf("remote-read request: %w", err)
	}
	return body, len(req.Queries), nil
}
