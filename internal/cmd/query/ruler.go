package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// RuleConfig is the ruler: alerting rules evaluated over the same data the API answers from
// (the bucket and the collectors' heads), their alerts sent to Alertmanager.
type RuleConfig struct {
	// Files are Prometheus rule files (globs, as Prometheus' rule_files). None: no ruler.
	Files []string
	// Interval is the default evaluation interval of a group without its own.
	Interval time.Duration
	// Alertmanagers are Alertmanager base URLs (http(s)://host:port[/prefix]).
	Alertmanagers []string
	// AlertmanagerTimeout bounds one send to one Alertmanager.
	AlertmanagerTimeout time.Duration
	// AlertmanagerHTTP holds the TLS trust and credentials for every Alertmanager.
	AlertmanagerHTTP config_util.HTTPClientConfig
	// ExternalURL is where the alerts' generator links point (Prometheus' --web.external-url).
	ExternalURL string
	// ResendDelay is how long to wait before resending a firing alert (--rules.alert.resend-delay).
	ResendDelay time.Duration
}

// DefaultRuleConfig holds Prometheus' defaults.
var DefaultRuleConfig = RuleConfig{
	Interval:            time.Minute,
	AlertmanagerTimeout: 10 * time.Second,
	ResendDelay:         time.Minute,
}

func (c RuleConfig) enabled() bool { return len(c.Files) > 0 }

func (c RuleConfig) validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("rule evaluation interval %s: must be positive", c.Interval))
	}
	if c.AlertmanagerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("alertmanager timeout %s: must be positive", c.AlertmanagerTimeout))
	}
	for _, a := range c.Alertmanagers {
		if _, err := alertmanagerConfig(a, c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Alertmanagers) > 0 && !c.enabled() {
		errs = append(errs, errors.New("alertmanagers are set but no rule file: nothing would send to them"))
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("external URL %q: want scheme://host[:port][/path]", c.ExternalURL))
		}
	}
	if err := c.AlertmanagerHTTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("alertmanager HTTP client: %w", err))
	}
	return errors.Join(errs...)
}

// alertmanagerConfig is Prometheus' alerting configuration of one Alertmanager base URL.
func alertmanagerConfig(raw string, c RuleConfig) (*config.AlertmanagerConfig, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("alertmanager URL %q: want http(s)://host:port[/path prefix]", raw)
	}
	return &config.AlertmanagerConfig{
		HTTPClientConfig: c.AlertmanagerHTTP,
		Scheme:           u.Scheme,
		PathPrefix:       strings.TrimSuffix(u.Path, "/"),
		Timeout:          model.Duration(c.AlertmanagerTimeout),
		APIVersion:       config.AlertmanagerAPIVersionV2,
	}, nil
}

// Ruler evaluates alerting rules with Prometheus' rule manager and sends their alerts with
// Prometheus' notifier.
type Ruler struct {
	rules    *rules.Manager
	notifier *notifier.Manager
	targets  map[string][]*targetgroup.Group
	logger   *slog.Logger
}

// errRecordingRule: a recording rule's results would be written nowhere. edgetel-query reads
// the bucket that collectors write and has no storage of its own; Prometheus or Thanos Ruler
// (which writes its own blocks) can keep them.
var errRecordingRule = errors.New("edgetel-query evaluates alerting rules only: a recording rule's results would have nowhere to go (run recording rules in Thanos Ruler or Prometheus)")

// NewRuler loads the rule files (every group parsed and checked as Prometheus does) and prepares
// the notifier. It starts nothing: see Run.
func NewRuler(ctx context.Context, c RuleConfig, engine promql.QueryEngine, q storage.Queryable, reg prometheus.Registerer, logger *slog.Logger) (*Ruler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	files, err := ruleFiles(c.Files, logger)
	if err != nil {
		return nil, err
	}
	externalURL := c.ExternalURL
	n := notifier.NewManager(&notifier.Options{QueueCapacity: 10000, DrainOnShutdown: true, Registerer: reg},
		model.UTF8Validation, logger.With("component", "notifier"))
	amConf := &config.Config{AlertingConfig: config.AlertingConfig{}}
	targets := map[string][]*targetgroup.Group{}
	for i, raw := range c.Alertmanagers {
		am, _ := alertmanagerConfig(raw, c) // validated above
		amConf.AlertingConfig.AlertmanagerConfigs = append(amConf.AlertingConfig.AlertmanagerConfigs, am)
		u, _ := url.Parse(raw)
		// The key ApplyConfig gives the i-th Alertmanager configuration (AlertmanagerConfigs.ToMap).
		targets[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Source:  raw,
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		}}
	}
	if err := n.ApplyConfig(amConf); err != nil {
		return nil, fmt.Errorf("alertmanagers: %w", err)
	}
	m := rules.NewManager(&rules.ManagerOptions{
		ExternalURL: mustURL(externalURL),
		QueryFunc:   rules.EngineQueryFunc(engine, q),
		NotifyFunc:  rules.SendAlerts(n, externalURL),
		Context:     ctx,
		Appendable:  discardAppendable{},
		// Only read to restore alerts' `for` state from ALERTS_FOR_STATE, which nothing here
		// writes (discardAppendable): an alert's `for` starts again after a restart.
		Queryable:   storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil }),
		Logger:      logger.With("component", "rule manager"),
		Registerer:  reg,
		ResendDelay: c.ResendDelay,
	})
	if err := m.Update(c.Interval, files, labels.EmptyLabels(), externalURL, nil); err != nil {
		return nil, fmt.Errorf("rule files: %w", err)
	}
	logger.Info("ruler loaded", "files", files, "groups", len(m.RuleGroups()), "alertmanagers", c.Alertmanagers)
	return &Ruler{rules: m, notifier: n, targets: targets, logger: logger}, nil
}

// ruleFiles expands the globs and refuses files that hold recording rules; a glob that matches
// nothing is an error, so that a mistyped path is not a silently empty ruler.
func ruleFiles(globs []string, logger *slog.Logger) ([]string, error) {
	var files []string
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("rule file pattern %q: %w", g, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("rule file pattern %q matches no file", g)
		}
		files = append(files, matches...)
	}
	for _, f := range files {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, parser.NewParser(parser.Options{}), logger)
		if len(errs) > 0 {
			return nil, fmt.Errorf("rule file %s: %w", f, errors.Join(errs...))
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					return nil, fmt.Errorf("rule file %s, group %q, rule %q: %w", f, g.Name, r.Record, errRecordingRule)
				}
			}
		}
	}
	return files, nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// Run evaluates the rules and sends alerts until ctx ends; pending alerts are drained to the
// Alertmanagers before it returns.
func (r *Ruler) Run(ctx context.Context) {
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- r.targets
	var wg sync.WaitGroup
	wg.Go(func() { r.notifier.Run(tsets) })
	wg.Go(r.rules.Run) // returns once Stop has stopped every group
	<-ctx.Done()
	r.rules.Stop()
	// After the rules: their last alerts are queued, and drained to the Alertmanagers.
	r.notifier.Stop()
	wg.Wait()
}

// RuleGroups and AlertingRules answer /api/v1/rules and /api/v1/alerts.
func (r *Ruler) RuleGroups() []*rules.Group           { return r.rules.RuleGroups() }
func (r *Ruler) AlertingRules() []*rules.AlertingRule { return r.rules.AlertingRules() }

// discardAppendable takes the ALERTS and ALERTS_FOR_STATE series the rule manager writes after
// each evaluation and keeps none: edgetel-query has no storage of its own (so an alert's `for`
// starts again after a restart), and its rule files hold no recording rules (ruleFiles).
type discardAppendable struct{}

func (discardAppendable) Appender(context.Context) storage.Appender { return discardAppender{} }

type discardAppender struct{ storage.Appender }

func (discardAppender) Append(ref storage.SeriesRef, _ labels.Labels, _ int64, _ float64) (storage.SeriesRef, error) {
	return ref, nil
}

func (discardAppender) AppendHistogram(ref storage.SeriesRef, _ labels.Labels, _ int64, _ *histogram.Histogram, _ *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return ref, nil
}

func (discardAppender) SetOptions(*storage.AppendOptions) {}
func (discardAppender) Commit() error                     { return nil }
func (discardAppender) Rollback() error                   { return nil }
