// Command edgetel-query serves Prometheus' HTTP query API over the TSDB blocks edgetel ships to
// an object-storage bucket, so Grafana's Prometheus data source reads months of edge history.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alecthomas/units"

	"github.com/edgetel/edgetel/internal/query"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgetel-query:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return query.Run(ctx, c, logger, nil)
}

func parseFlags(args []string) (query.Config, error) {
	c := query.DefaultConfig()
	fs := flag.NewFlagSet("edgetel-query", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve the Prometheus HTTP API on")
	fs.StringVar(&c.BucketConfig, "bucket-config", "", "Thanos objstore bucket YAML file (FILESYSTEM, S3, GCS, AZURE); overrides --bucket-dir")
	fs.StringVar(&c.BucketDir, "bucket-dir", c.BucketDir, "directory of a FILESYSTEM bucket, used when --bucket-config is not set")
	fs.StringVar(&c.CacheDir, "cache-dir", c.CacheDir, "local directory the blocks are copied into")
	fs.Var((*byteSize)(&c.CacheMaxBytes), "cache-max-bytes", "size bound of the block cache (bytes, or with a unit: 512MiB, 10GiB); the oldest blocks are evicted first")
	fs.DurationVar(&c.SyncInterval, "sync-interval", c.SyncInterval, "how often the bucket is checked for new blocks")
	fs.DurationVar(&c.Engine.Timeout, "query.timeout", c.Engine.Timeout, "maximum time a query may take before it is aborted")
	fs.IntVar(&c.Engine.MaxSamples, "query.max-samples", c.Engine.MaxSamples, "maximum number of samples a single query may load into memory")
	fs.DurationVar(&c.Engine.LookbackDelta, "lookback-delta", c.Engine.LookbackDelta, "how far back an instant selector looks for a sample")
	if err := fs.Parse(args); err != nil {
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
