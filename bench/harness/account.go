package harness

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Scraped tells the series edgesim served from the ones a scraper makes up about its own scrapes
// (Prometheus', vmagent's and the upstream Collector's up and scrape_*, the Collector's
// target_info, the kubeedge receiver's kubeedge_* node health): only the former are counted
// against what edgesim served.
func Scraped(name string) bool {
	return name != "up" && name != "target_info" && !strings.HasPrefix(name, "scrape_") && !strings.HasPrefix(name, "kubeedge_")
}

// Account is the exact loss accounting of one run: the (series, timestamp) pairs edgesim served
// whole against the distinct ones that reached the sink, in total and by node.
type Account struct {
	Served, Delivered     int64
	ServedBy, DeliveredBy map[string]int64
	// FailedBy counts, by node, the scrapes the system itself reported failed (up == 0) before
	// the fleet paused: a scrape that fails after edgesim wrote its body out (a timeout on a
	// loaded machine) is served and lost, and the system counts it.
	FailedBy map[string]int
}

// Lost is what was served and never arrived.
func (a Account) Lost() int64 { return a.Served - a.Delivered }

// Note says where the loss is: on how many nodes, and how many of those had failed scrapes.
func (a Account) Note() string {
	lossy, failed := 0, 0
	for node, served := range a.ServedBy {
		if served > a.DeliveredBy[node] {
			lossy++
			if a.FailedBy[node] > 0 {
				failed++
			}
		}
	}
	if lossy == 0 {
		return ""
	}
	return fmt.Sprintf("loss on %d nodes, %d of them with scrapes the system reported failed", lossy, failed)
}

// beginAccount starts a run's accounting from zero. Call it while nothing scrapes the fleet
// (before the system under test starts).
func (e *Env) beginAccount() {
	e.Sim.Pause(false)
	e.Sim.ResetServed()
	e.Sink.Reset()
	e.Sink.Watch("up", 0)
}

// failedScrapes counts by node the up == 0 samples before t.
func (e *Env) failedScrapes(before time.Time) map[string]int {
	out := map[string]int{}
	for target, stamps := range e.Sink.Watched() {
		i := strings.Index(target, `node="`)
		if i < 0 {
			continue
		}
		node := target[i+len(`node="`):]
		node = node[:strings.IndexByte(node, '"')]
		for _, ts := range stamps {
			if ts < before.UnixMilli() {
				out[node]++
			}
		}
	}
	return out
}

// pauseFor stops the fleet serving while fn runs, after the scrapes in flight have ended and
// what they fetched has been handed on: fn (a SIGKILL) then meets only data the system accepted.
func (e *Env) pauseFor(ctx context.Context, fn func() error) error {
	e.Sim.Pause(true)
	defer e.Sim.Pause(false)
	if !sleepCtx(ctx, e.Timeout+2*time.Second) {
		return ctx.Err()
	}
	return fn()
}

// outstanding is what edgesim served and the sink does not hold yet.
func (e *Env) outstanding() int64 {
	served, _ := e.Sim.Served()
	delivered, _ := e.Sink.Delivered(Scraped)
	return served - delivered
}

// settle ends a run's accounting: the fleet stops serving, the scrapes in flight end, and the
// system gets until everything served has arrived, or nothing more arrives for stable (its last
// retries included), or timeout. The fleet serves again afterwards.
func (e *Env) settle(ctx context.Context, stable, timeout time.Duration) (Account, error) {
	e.Sim.Pause(true)
	defer e.Sim.Pause(false)
	paused := time.Now()
	if !sleepCtx(ctx, e.Timeout+2*time.Second) {
		return Account{}, ctx.Err()
	}
	var a Account
	a.Served, a.ServedBy = e.Sim.Served()
	a.FailedBy = e.failedScrapes(paused)
	start, last, lastChange := time.Now(), int64(-1), time.Now()
	for {
		a.Delivered, a.DeliveredBy = e.Sink.Delivered(Scraped)
		if a.Delivered != last {
			last, lastChange = a.Delivered, time.Now()
		}
		if a.Delivered >= a.Served || time.Since(lastChange) > stable || time.Since(start) > timeout {
			return a, nil
		}
		if !sleepCtx(ctx, time.Second) {
			return a, ctx.Err()
		}
	}
}

// settleStored ends the accounting of a system that stores what it scrapes in a local TSDB: the
// fleet stops serving, the scrapes in flight end, the system stops (SIGTERM: it closes its TSDB),
// and what the TSDB at dir holds is set against what was served.
func (e *Env) settleStored(ctx context.Context, proc *Process, dir string) (Account, error) {
	e.Sim.Pause(true)
	defer e.Sim.Pause(false)
	if !sleepCtx(ctx, e.Timeout+2*time.Second) {
		return Account{}, ctx.Err()
	}
	var a Account
	a.Served, a.ServedBy = e.Sim.Served()
	if err := proc.Stop(2 * time.Minute); err != nil {
		return a, err
	}
	var err error
	a.Delivered, a.DeliveredBy, _, err = countStored(ctx, dir)
	return a, err
}
