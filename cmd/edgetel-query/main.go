// Command edgetel-query serves Prometheus' HTTP query API over the TSDB blocks edgetel ships to
// an object-storage bucket, so Grafana's Prometheus data source reads months of edge history.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alecthomas/units"

	"github.com/edgetel/edgetel/internal/cmd/query"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return // the usage was asked for and printed: not an error
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgetel-query:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c, err := parseFlags(args, os.Stdout)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return query.Run(ctx, c, logger, nil)
}

// parseFlags parses the command line; -h and --help print the usage to usage and return
// flag.ErrHelp.
func parseFlags(args []string, usage io.Writer) (query.Config, error) {
	c := query.DefaultConfig()
	fs := flag.NewFlagSet("edgetel-query", flag.ContinueOnError)
	// The flag package prints errors and usage itself; errors are printed once, by main.
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve the Prometheus HTTP API on")
	fs.StringVar(&c.BucketConfig, "bucket-config", "", "Thanos objstore bucket YAML file (FILESYSTEM, S3, GCS, AZURE); overrides --bucket-dir")
	fs.StringVar(&c.BucketDir, "bucket-dir", c.BucketDir, "directory of a FILESYSTEM bucket, used when --bucket-config is not set")
	fs.StringVar(&c.CacheDir, "cache-dir", c.CacheDir, "local directory the blocks are copied into")
	fs.Var((*byteSize)(&c.CacheMaxBytes), "cache-max-bytes", "size bound of the block cache (bytes, or with a unit: 512MiB, 10GiB); the oldest blocks are evicted first")
	fs.DurationVar(&c.SyncInterval, "sync-interval", c.SyncInterval, "how often the bucket is checked for new blocks")
	fs.DurationVar(&c.Engine.Timeout, "query.timeout", c.Engine.Timeout, "maximum time a query may take before it is aborted")
	fs.IntVar(&c.Engine.MaxSamples, "query.max-samples", c.Engine.MaxSamples, "maximum number of samples a single query may load into memory")
	fs.DurationVar(&c.Engine.LookbackDelta, "lookback-delta", c.Engine.LookbackDelta, "how far back an instant selector looks for a sample")
	fs.IntVar(&c.Engine.MaxConcurrency, "query.max-concurrency", c.Engine.MaxConcurrency, "maximum number of queries evaluated at once; more wait in a queue (the wait counts against --query.timeout)")
	fs.IntVar(&c.MaxResults, "api.max-results", c.MaxResults, "most series, label names or label values one /series, /labels or /label/<name>/values answer holds (a client's limit parameter above it, or none, is lowered to it; 0: no bound)")
	fs.StringVar(&c.CORSOrigin, "web.cors.origin", "", "regexp of the origins browsers may read answers from, anchored (e.g. 'https?://grafana\\.example\\.com'); empty: none")
	fs.StringVar(&c.WebConfigFile, "web.config.file", "", "Prometheus web config file (exporter-toolkit format): tls_server_config for HTTPS, basic_auth_users with bcrypt hashes; read on every request, so rotated certificates and users apply at once")
	fs.StringVar(&c.BearerTokenFile, "web.bearer-token-file", "", "file holding the bearer token every API and /metrics request must carry (Authorization: Bearer <token>); excludes basic_auth_users")
	fs.StringVar(&c.ProbeListen, "web.probe-listen", "", "address serving only /-/healthy and /-/ready, plain HTTP without credentials, for the kubelet's probes; empty: none")
	fs.Func("head.endpoint", "base URL of a collector's objstore head_api (http(s)://host:port) whose not-yet-uploaded data is merged into every answer; repeatable", func(v string) error {
		c.Heads.Endpoints = append(c.Heads.Endpoints, v)
		return nil
	})
	fs.StringVar(&c.Heads.DNS, "head.dns", "", "host:port of a headless Service of collectors: every address it resolves to is a head_api, re-resolved every --head.dns-refresh")
	fs.StringVar(&c.Heads.Scheme, "head.scheme", c.Heads.Scheme, "scheme of the heads found by --head.dns (http or https)")
	fs.DurationVar(&c.Heads.Refresh, "head.dns-refresh", c.Heads.Refresh, "how often --head.dns is resolved")
	fs.DurationVar(&c.Heads.Timeout, "head.timeout", c.Heads.Timeout, "time limit of one read from one head; a head that fails or times out adds a warning to the answer")
	fs.StringVar(&c.Heads.HTTP.TLSConfig.CAFile, "head.tls-ca-file", "", "PEM CA bundle that signs the heads' certificates")
	fs.StringVar(&c.Heads.HTTP.TLSConfig.ServerName, "head.tls-server-name", "", "name the heads' certificates must carry (heads found by DNS are dialed by address)")
	fs.StringVar(&c.Heads.HTTP.BearerTokenFile, "head.bearer-token-file", "", "file holding the bearer token sent to the heads")
	fs.Func("query.replica-label", "label that tells replicas of one series apart (HA collectors: replica); series equal without it are merged with Thanos Query's penalty algorithm and the label dropped from answers; repeatable", func(v string) error {
		c.ReplicaLabels = append(c.ReplicaLabels, v)
		return nil
	})
	fs.Func("rule-file", "Prometheus rule file (a glob) of alerting rules to evaluate over the bucket and heads; repeatable. Recording rules are refused: their results would have nowhere to go", func(v string) error {
		c.Rules.Files = append(c.Rules.Files, v)
		return nil
	})
	fs.DurationVar(&c.Rules.Interval, "rule.evaluation-interval", c.Rules.Interval, "evaluation interval of rule groups that set none")
	fs.Func("alertmanager.url", "base URL of an Alertmanager the ruler sends alerts to (http(s)://host:port[/prefix]); repeatable: give every replica of an HA Alertmanager", func(v string) error {
		c.Rules.Alertmanagers = append(c.Rules.Alertmanagers, v)
		return nil
	})
	fs.DurationVar(&c.Rules.AlertmanagerTimeout, "alertmanager.timeout", c.Rules.AlertmanagerTimeout, "time limit of one send to one Alertmanager")
	fs.StringVar(&c.Rules.AlertmanagerHTTP.TLSConfig.CAFile, "alertmanager.tls-ca-file", "", "PEM CA bundle that signs the Alertmanagers' certificates")
	fs.StringVar(&c.Rules.AlertmanagerHTTP.BearerTokenFile, "alertmanager.bearer-token-file", "", "file holding the bearer token sent to the Alertmanagers")
	fs.StringVar(&c.Rules.ExternalURL, "web.external-url", "", "URL edgetel-query is reached at, for the alerts' generator links (default: http://<listen address>)")
	fs.DurationVar(&c.Rules.ResendDelay, "rules.alert.resend-delay", c.Rules.ResendDelay, "minimum time to wait before resending a firing alert to Alertmanager")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usage, "Usage: edgetel-query [flags]\n\nServes the Prometheus HTTP query API over the TSDB blocks in a bucket.\n\nFlags:")
			fs.SetOutput(usage)
			fs.PrintDefaults()
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

// byteSize is a flag that takes a byte count with an optional base-2 unit.
type byteSize int64

func (b *byteSize) String() string { return units.Base2Bytes(*b).String() }

func (b *byteSize) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*b = byteSize(n)
		return nil
	}
	n, err := units.ParseBase2Bytes(s)
	if err != nil {
		return fmt.Errorf("invalid size %q: %w", s, err)
	}
	*b = byteSize(n)
	return nil
}
