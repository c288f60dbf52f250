package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
	"gopkg.in/yaml.v2"
)

// HeadConfig lists the collectors whose not-yet-uploaded data (the objstore exporter's
// head_api) edgetel-query merges into every answer.
type HeadConfig struct {
	// Endpoints are head API base URLs (http://collector-0:9095).
	Endpoints []string
	// DNS is host:port of a headless Service: every A/AAAA record is a head, refreshed every
	// Refresh.
	DNS     string
	Scheme  string
	Refresh time.Duration
	// Timeout bounds one read from one head.
	Timeout time.Duration
	// HTTP is the client configuration (TLS CA, server name, credentials) for every head.
	HTTP config_util.HTTPClientConfig
}

func (c HeadConfig) enabled() bool { return len(c.Endpoints) > 0 || c.DNS != "" }

func (c HeadConfig) validate() error {
	var errs []error
	for _, e := range c.Endpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("head endpoint %q: want http(s)://host:port", e))
		}
	}
	if c.DNS != "" {
		if _, _, err := net.SplitHostPort(c.DNS); err != nil {
			errs = append(errs, fmt.Errorf("head DNS name %q: want host:port: %w", c.DNS, err))
		}
		if c.Scheme != "http" && c.Scheme != "https" {
			errs = append(errs, fmt.Errorf("head scheme %q: want http or https", c.Scheme))
		}
		if c.Refresh <= 0 {
			errs = append(errs, fmt.Errorf("head DNS refresh %s: must be positive", c.Refresh))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("head timeout %s: must be positive", c.Timeout))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("head HTTP client: %w", err))
	}
	return errors.Join(errs...)
}

// Heads is the current set of collector heads.
type Heads struct {
	cfg    HeadConfig
	logger *slog.Logger
	client *http.Client
	lookup func(ctx context.Context, host string) ([]string, error)

	mu    sync.Mutex
	heads map[string]*head // by base URL
}

// NewHeads builds the static heads; DNS heads appear with Refresh (Run) or refresh.
func NewHeads(cfg HeadConfig, logger *slog.Logger) (*Heads, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := config_util.NewClientFromConfig(cfg.HTTP, "edgetel_query_heads")
	if err != nil {
		return nil, fmt.Errorf("head HTTP client: %w", err)
	}
	h := &Heads{cfg: cfg, logger: logger, client: client, lookup: net.DefaultResolver.LookupHost, heads: map[string]*head{}}
	for _, e := range cfg.Endpoints {
		if err := h.add(strings.TrimSuffix(e, "/")); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *Heads) add(base string) error {
	if _, ok := h.heads[base]; ok {
		return nil
	}
	u, err := url.Parse(base + "/api/v1/read")
	if err != nil {
		return fmt.Errorf("head %s: %w", base, err)
	}
	rc, err := remote.NewReadClient(base, &remote.ClientConfig{
		URL: &config_util.URL{URL: u}, Timeout: model.Duration(h.cfg.Timeout), HTTPClientConfig: h.cfg.HTTP,
		ChunkedReadLimit: 50e6,
	})
	if err != nil {
		return fmt.Errorf("head %s: %w", base, err)
	}
	h.heads[base] = &head{base: base, read: rc, client: h.client, timeout: h.cfg.Timeout}
	return nil
}

// Run refreshes the DNS heads every Refresh until ctx ends.
func (h *Heads) Run(ctx context.Context) {
	if h.cfg.DNS == "" {
		return
	}
	for {
		if err := h.refresh(ctx); err != nil && ctx.Err() == nil {
			h.logger.Warn("head discovery failed, keeping the heads found before", "dns", h.cfg.DNS, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.cfg.Refresh):
		}
	}
}

// refresh resolves the DNS name: the heads are the static ones plus one per address.
func (h *Heads) refresh(ctx context.Context) error {
	host, port, _ := net.SplitHostPort(h.cfg.DNS)
	addrs, err := h.lookup(ctx, host)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, e := range h.cfg.Endpoints {
		want[strings.TrimSuffix(e, "/")] = true
	}
	for _, a := range addrs {
		want[h.cfg.Scheme+"://"+net.JoinHostPort(a, port)] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for base := range h.heads {
		if !want[base] {
			delete(h.heads, base)
		}
	}
	for base := range want {
		if err := h.add(base); err != nil {
			return err
		}
	}
	return nil
}

// list returns the current heads, by URL.
func (h *Heads) list() []*head {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*head, 0, len(h.heads))
	for _, hd := range h.heads {
		out = append(out, hd)
	}
	slices.SortFunc(out, func(a, b *head) int { return strings.Compare(a.base, b.base) })
	return out
}

// URLs returns the current heads' base URLs.
func (h *Heads) URLs() []string {
	var out []string
	for _, hd := range h.list() {
		out = append(out, hd.base)
	}
	return out
}

// head is one collector's head API.
type head struct {
	base    string
	read    remote.ReadClient
	client  *http.Client
	timeout time.Duration

	mu  sync.Mutex
	ext map[string]string // nil until read from status/config
}

// external returns the head's external labels (its status/config), read once.
func (hd *head) external(ctx context.Context) (map[string]string, error) {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.ext != nil {
		return hd.ext, nil
	}
	var d struct {
		YAML string `json:"yaml"`
	}
	if err := hd.get(ctx, "/api/v1/status/config", nil, &d); err != nil {
		return nil, err
	}
	var conf struct {
		Global struct {
			ExternalLabels map[string]string `yaml:"external_labels"`
		} `yaml:"global"`
	}
	if err := yaml.Unmarshal([]byte(d.YAML), &conf); err != nil {
		return nil, fmt.Errorf("status/config: %w", err)
	}
	if conf.Global.ExternalLabels == nil {
		conf.Global.ExternalLabels = map[string]string{}
	}
	hd.ext = conf.Global.ExternalLabels
	return hd.ext, nil
}

// get reads a Prometheus API answer's data into into.
func (hd *head) get(ctx context.Context, path string, params url.Values, into any) error {
	ctx, cancel := context.WithTimeout(ctx, hd.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hd.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := hd.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: HTTP %d: not a Prometheus API answer", path, resp.StatusCode)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, r.Error)
	}
	return json.Unmarshal(r.Data, into)
}

// querier reads [mint, maxt] of the head. Its errors name the head; merged as a secondary
// querier, they become warnings of the answer instead of failing it.
func (hd *head) querier(mint, maxt int64) storage.Querier {
	return &headQuerier{hd: hd, mint: mint, maxt: maxt}
}

type headQuerier struct {
	hd         *head
	mint, maxt int64
}

// inner is the head as a querier of series without external labels (as a bucket block is),
// wrapped like a block in withExternalLabels: matchers on them are checked here, and they are
// put back on every series.
func (q *headQuerier) inner(ctx context.Context) (storage.Querier, map[string]string, error) {
	ext, err := q.hd.external(ctx)
	if err != nil {
		return nil, nil, q.wrap(err)
	}
	// The remote-read client with the head's external labels asks for them and strips them
	// from the answer.
	rq, err := remote.NewSampleAndChunkQueryableClient(q.hd.read, labels.FromMap(ext), nil, true,
		func() (int64, error) { return 0, nil }).Querier(q.mint, q.maxt)
	if err != nil {
		return nil, nil, q.wrap(err)
	}
	return withExternalLabels(&rawHeadQuerier{Querier: rq, q: q}, ext), ext, nil
}

func (q *headQuerier) wrap(err error) error {
	return fmt.Errorf("collector head %s: %w", q.hd.base, err)
}

func (q *headQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	in, _, err := q.inner(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return &headSeriesSet{SeriesSet: in.Select(ctx, sortSeries, hints, ms...), q: q}
}

func (q *headQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	in, _, err := q.inner(ctx)
	if err != nil {
		return nil, nil, err
	}
	return in.LabelNames(ctx, hints, ms...)
}

func (q *headQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	in, ext, err := q.inner(ctx)
	if err != nil {
		return nil, nil, err
	}
	// An external label's value is there when any series matches: asking the head for label
	// names is enough, where withExternalLabels would read every matching series.
	if v, ok := ext[name]; ok {
		names, ws, err := in.LabelNames(ctx, nil, ms...)
		if err != nil || len(names) == 0 {
			return nil, ws, err
		}
		return []string{v}, ws, nil
	}
	return in.LabelValues(ctx, name, hints, ms...)
}

func (q *headQuerier) Close() error { return nil }

// headSeriesSet names the head in a read error.
type headSeriesSet struct {
	storage.SeriesSet
	q *headQuerier
}

func (s *headSeriesSet) Err() error {
	if err := s.SeriesSet.Err(); err != nil {
		return s.q.wrap(err)
	}
	return nil
}

// rawHeadQuerier answers label queries from the head API's metadata endpoints (remote read has
// none); Select is remote read.
type rawHeadQuerier struct {
	storage.Querier
	q *headQuerier
}

func (r *rawHeadQuerier) params(hints *storage.LabelHints, ms []*labels.Matcher) url.Values {
	v := url.Values{
		"start": {strconv.FormatFloat(float64(r.q.mint)/1000, 'f', -1, 64)},
		"end":   {strconv.FormatFloat(float64(r.q.maxt)/1000, 'f', -1, 64)},
	}
	if len(ms) > 0 {
		sel := make([]string, len(ms))
		for i, m := range ms {
			sel[i] = m.String()
		}
		v.Set("match[]", "{"+strings.Join(sel, ",")+"}")
	}
	if hints != nil && hints.Limit > 0 {
		v.Set("limit", strconv.Itoa(hints.Limit))
	}
	return v
}

func (r *rawHeadQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var out []string
	if err := r.q.hd.get(ctx, "/api/v1/labels", r.params(hints, ms), &out); err != nil {
		return nil, nil, r.q.wrap(err)
	}
	return out, nil, nil
}

func (r *rawHeadQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var out []string
	if err := r.q.hd.get(ctx, "/api/v1/label/"+url.PathEscape(name)+"/values", r.params(hints, ms), &out); err != nil {
		return nil, nil, r.q.wrap(err)
	}
	return out, nil, nil
}

// withHeads merges the collectors' heads into the bucket's answers. The bucket's querier is the
// primary (its errors fail the query), each head a secondary (its errors are warnings). Series
// with the same labels (a block both uploaded and still in a head) are merged by
// ChainedSeriesMerge, which keeps one sample per timestamp.
type withHeads struct {
	*Store
	heads *Heads
}

func (w withHeads) Querier(mint, maxt int64) (storage.Querier, error) {
	bq, err := w.Store.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	var hs []storage.Querier
	for _, hd := range w.heads.list() {
		hs = append(hs, hd.querier(mint, maxt))
	}
	return storage.NewMergeQuerier([]storage.Querier{bq}, hs, storage.ChainedSeriesMerge), nil
}

// storedChunks is the bucket's chunks and the heads' samples as chunks. A replica's series in a
// block that is still in its head is merged first, one sample per timestamp as in Querier.
func (w withHeads) storedChunks(mint, maxt int64) (storage.ChunkQuerier, error) {
	bq, err := w.Store.storedChunks(mint, maxt)
	if err != nil {
		return nil, err
	}
	var hs []storage.ChunkQuerier
	for _, hd := range w.heads.list() {
		hs = append(hs, sampleChunks{hd.querier(mint, maxt)})
	}
	return storage.NewMergeChunkQuerier([]storage.ChunkQuerier{bq}, hs,
		storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}
