package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgetel/edgetel/bench/harness"
)

// runFloor is the floor's own process: `peerbench floor -targets FILE -interval D`.
func runFloor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	targets := fs.String("targets", "", "file_sd JSON written by the benchmark")
	interval := fs.Duration("interval", 15*time.Second, "fetch every target this often")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*targets)
	if err != nil {
		return fmt.Errorf("reading targets: %w", err)
	}
	var groups []struct {
		Targets []string `json:"targets"`
	}
	if err := json.Unmarshal(data, &groups); err != nil {
		return fmt.Errorf("parsing targets: %w", err)
	}
	f := &harness.Floor{Interval: *interval, Paths: []string{"/metrics", "/metrics/cadvisor"}}
	for _, g := range groups {
		f.Targets = append(f.Targets, g.Targets...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return f.Run(ctx, os.Stdout)
}
