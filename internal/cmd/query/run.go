package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/exporter-toolkit/web"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/thanos-io/objstore"

	"github.com/edgetel/edgetel/internal/bucket"
)

// Config is edgetel-query's configuration (its flags).
type Config struct {
	Listen string
	// BucketConfig is a Thanos objstore YAML file; when empty, BucketDir is a FILESYSTEM bucket.
	BucketConfig  string
	BucketDir     string
	CacheDir      string
	CacheMaxBytes int64
	SyncInterval  time.Duration
	Engine        EngineOptions
	// MaxResults bounds /series, /labels and /label/<name>/values answers (Options.MaxResults).
	MaxResults int
	// CORSOrigin is the regexp (anchored, as Prometheus' --web.cors.origin) of the origins
	// browsers may read answers from; empty: none.
	CORSOrigin string
	// WebConfigFile is Prometheus' web config (exporter-toolkit: TLS, basic auth users with
	// bcrypt hashes), served by exporter-toolkit's web package; empty: plain HTTP, no users.
	WebConfigFile string
	// BearerTokenFile holds the bearer token API and /metrics requests must carry (see
	// LoadAuth); empty: no check.
	BearerTokenFile string
	// ProbeListen, when set, serves /-/healthy and /-/ready alone, in plain HTTP and without
	// credentials, for the kubelet's probes; empty: no such listener.
	ProbeListen string
	// Heads are the collectors' head APIs merged into every answer; none by default.
	Heads HeadConfig
	// Rules is the ruler: alerting rules over the bucket and heads; none by default.
	Rules RuleConfig
	// ReplicaLabels are the labels that tell replicas of one series apart (Thanos Query's
	// --query.replica-label): series equal without them are merged (dedup.go) and the labels
	// dropped; none by default.
	ReplicaLabels []string
}

// DefaultConfig holds the flag defaults.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:9090",
		BucketDir:     filepath.Join("data", "bucket"),
		CacheDir:      filepath.Join("data", "query-cache"),
		CacheMaxBytes: 10 << 30,
		SyncInterval:  30 * time.Second,
		Engine:        DefaultEngineOptions,
		MaxResults:    DefaultMaxResults,
		Heads:         HeadConfig{Scheme: "http", Refresh: 30 * time.Second, Timeout: 30 * time.Second},
		Rules:         DefaultRuleConfig,
	}
}

// OpenBucket opens the configured bucket.
func (c Config) OpenBucket(ctx context.Context, logger *slog.Logger) (objstore.Bucket, error) {
	if c.BucketConfig != "" {
		conf, err := os.ReadFile(c.BucketConfig)
		if err != nil {
			return nil, fmt.Errorf("read bucket config: %w", err)
		}
		return bucket.NewFromYAML(ctx, conf, logger)
	}
	if c.BucketDir == "" {
		return nil, errors.New("either a bucket config file or a bucket directory is required")
	}
	dir, err := filepath.Abs(c.BucketDir)
	if err != nil {
		return nil, fmt.Errorf("bucket dir: %w", err)
	}
	return bucket.New(ctx, &bucket.Config{Type: objstore.FILESYSTEM, Config: map[string]string{"directory": dir}}, logger)
}

// Run serves the query API until ctx ends, then shuts the server down and closes the cache.
// ready, if not nil, receives the listening address once the server accepts connections.
func Run(ctx context.Context, c Config, logger *slog.Logger, ready func(addr net.Addr)) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if c.SyncInterval <= 0 {
		return fmt.Errorf("sync interval must be positive, got %s", c.SyncInterval)
	}
	cors, err := c.corsRegexp()
	if err != nil {
		return err
	}
	auth, err := LoadAuth(c.BearerTokenFile)
	if err != nil {
		return err
	}
	wc, err := loadWebConfig(c.WebConfigFile)
	if err != nil {
		return err
	}
	if auth != nil && wc.users {
		return errors.New("--web.bearer-token-file and basic_auth_users in --web.config.file exclude each other: a request carries one Authorization header")
	}
	if (auth != nil || wc.users) && !wc.tls && !loopback(c.Listen) {
		return errCleartextCredentials
	}
	bkt, err := c.OpenBucket(ctx, logger)
	if err != nil {
		return err
	}
	defer bkt.Close()
	store, err := NewStore(bkt, StoreOptions{Dir: c.CacheDir, MaxBytes: c.CacheMaxBytes, Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()
	m := newMetrics(store)
	var source chunkSource = store
	var heads *Heads
	if c.Heads.enabled() {
		if heads, err = NewHeads(c.Heads, logger); err != nil {
			return err
		}
		source = withHeads{Store: store, heads: heads}
	}
	queryable := withDedup(source, c.ReplicaLabels)
	if c.Rules.enabled() || len(c.Rules.Alertmanagers) > 0 {
		// Refused before the bucket is read and the port taken.
		if err := c.Rules.validate(); err != nil {
			return err
		}
	}
	var ruler *Ruler
	handler, err := NewHandler(queryable, Options{
		Engine: c.Engine, ActiveQueryDir: c.CacheDir, MaxResults: c.MaxResults, CORSOrigin: cors, Registerer: m.reg,
		Rules: func() apiv1.RulesRetriever {
			if ruler == nil {
				return nil
			}
			return ruler
		},
		Alertmanagers: func() apiv1.AlertmanagerRetriever {
			if ruler == nil {
				return nil
			}
			return ruler.notifier
		},
	}, logger)
	if err != nil {
		return err
	}
	defer handler.Close()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var probeLn net.Listener
	if c.ProbeListen != "" {
		if probeLn, err = net.Listen("tcp", c.ProbeListen); err != nil {
			return fmt.Errorf("probe listen: %w", err)
		}
		defer probeLn.Close()
	}
	if c.Rules.enabled() {
		rc := c.Rules
		if rc.ExternalURL == "" {
			rc.ExternalURL = "http://" + ln.Addr().String()
		}
		if ruler, err = NewRuler(ctx, rc, handler.Engine(), queryable, m.reg, logger); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	// Probes carry no bearer token and learn nothing but that the process runs (basic auth
	// users of the web config cover them too: hence --web.probe-listen).
	probes(mux)
	mux.Handle(APIPrefix+"/", auth.Wrap(m.instrument(handler), m.unauthorized.Inc))
	mux.Handle("/metrics", auth.Wrap(m.handler(), m.unauthorized.Inc))
	// Requests get their own context so that queries still running when the shutdown grace
	// period ends are cancelled: the blocks they read can only close once they stop.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return reqCtx }}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { store.Run(ctx, c.SyncInterval, m.observeSync) })
	if heads != nil {
		wg.Go(func() { heads.Run(ctx) })
	}
	if ruler != nil {
		wg.Go(func() { ruler.Run(ctx) })
	}
	serveErr := make(chan error, 2)
	wg.Go(func() {
		webConfigFile := c.WebConfigFile
		serveErr <- web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfigFile}, logger)
	})
	var probeSrv *http.Server
	if probeLn != nil {
		probeMux := http.NewServeMux()
		probes(probeMux)
		probeSrv = &http.Server{Handler: probeMux, ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() { serveErr <- probeSrv.Serve(probeLn) })
	}
	logger.Info("serving the Prometheus query API", "addr", ln.Addr().String(), "bucket", bkt.Name(),
		"cacheDir", c.CacheDir, "syncInterval", c.SyncInterval)
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	cancel()
	shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if probeSrv != nil {
		_ = probeSrv.Close() // probes hold no work worth waiting for
	}
	if shutErr := srv.Shutdown(shutCtx); shutErr != nil {
		logger.Warn("cancelling queries still running after the shutdown grace period", "err", shutErr)
		cancelRequests()
		if closeErr := srv.Close(); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("close server: %w", closeErr))
		}
	}
	wg.Wait()
	return err
}

// probes serves the kubelet's probes on mux.
func probes(mux *http.ServeMux) {
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "edgetel-query is Ready.") })
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "edgetel-query is Healthy.") })
}

// corsRegexp compiles CORSOrigin anchored, as Prometheus does; nil when empty.
func (c Config) corsRegexp() (*regexp.Regexp, error) {
	if c.CORSOrigin == "" {
		return nil, nil
	}
	re, err := regexp.Compile("^(?:" + c.CORSOrigin + ")$")
	if err != nil {
		return nil, fmt.Errorf("CORS origin: %w", err)
	}
	return re, nil
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
