package harness

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// OutageConfig is one outage run.
type OutageConfig struct {
	Warmup, Live, Outage time.Duration
	Kill                 bool          // SIGKILL the system halfway through the outage and start it again
	DrainTimeout         time.Duration // give up waiting for the backlog after this long
	Poll                 time.Duration // how often the backlog is checked (default 5s)
	StableFor            time.Duration // the backlog is drained when unchanged this long (default 90s)
}

// Outage runs s, takes the sink down (503) for c.Outage, brings it back and waits for the backlog.
// Lost samples are the gaps left in each series between the last slot before the outage and the
// first after it; the drain time is when those gaps stopped shrinking. The env's sink must track
// slots.
func (e *Env) Outage(ctx context.Context, s System, c OutageConfig) (OutageRow, error) {
	row := OutageRow{System: s.Name, Killed: c.Kill, Drain: -1}
	if c.Poll == 0 {
		c.Poll = 5 * time.Second
	}
	if c.StableFor == 0 {
		c.StableFor = 90 * time.Second
	}
	e.Sink.Reset()
	e.Sink.SetDown(0)
	proc, p, err := e.Launch(s)
	if err != nil {
		return row, err
	}
	defer func() { proc.Stop(20 * time.Second) }()
	if !sleepCtx(ctx, c.Warmup) {
		return row, ctx.Err()
	}
	s0, liveStart := e.Sink.Stats().Samples, time.Now()
	if !sleepCtx(ctx, c.Live) {
		return row, ctx.Err()
	}
	row.LiveRate = float64(e.Sink.Stats().Samples-s0) / c.Live.Seconds()
	// The same count over the live window, with the sink up: what scrape timing and series
	// churn alone make look lost. Loss beyond it is the system's. With Live = Outage + 4
	// intervals it spans as long as the window the loss is counted in.
	row.Baseline = e.Sink.Gaps(liveStart.UnixMilli(), time.Now().UnixMilli())

	outageStart := time.Now()
	e.Sink.SetDown(http.StatusServiceUnavailable)
	killAt := outageStart.Add(c.Outage / 2)
	for time.Since(outageStart) < c.Outage {
		if !sleepCtx(ctx, min(c.Poll, c.Outage-time.Since(outageStart))) {
			return row, ctx.Err()
		}
		row.DiskPeak = max(row.DiskPeak, DirBytes(p.DataDir))
		if c.Kill && !killAt.IsZero() && time.Now().After(killAt) {
			killAt = time.Time{}
			if err := proc.Kill(); err != nil {
				return row, err
			}
			if proc, _, err = e.Relaunch(s, p); err != nil {
				return row, fmt.Errorf("restarting %s after SIGKILL: %w", s.Name, err)
			}
		}
	}
	recovered := time.Now()
	e.Sink.SetDown(0)
	if exited, err := proc.Exited(); exited {
		row.Note = fmt.Sprintf("exited during the outage: %v (log %s)", err, filepath.Dir(p.DataDir))
	}

	// The backlog is what the sink holds for the outage's slots; it is drained when that stops
	// growing for StableFor (longer than any peer's retry backoff). Lost samples are then the gaps
	// from two intervals before the outage to two after it, so every series has a slot each side.
	from, to := outageStart.Add(-2*e.Interval).UnixMilli(), recovered.Add(2*e.Interval).UnixMilli()
	lastCovered, lastChange := e.Sink.Covered(outageStart.UnixMilli(), recovered.UnixMilli()), recovered
	for time.Since(lastChange) < c.StableFor || time.Since(recovered) < 3*e.Interval {
		if time.Since(recovered) > c.DrainTimeout {
			row.Note = joinNote(row.Note, "still draining at the timeout")
			break
		}
		if !sleepCtx(ctx, c.Poll) {
			return row, ctx.Err()
		}
		if n := e.Sink.Covered(outageStart.UnixMilli(), recovered.UnixMilli()); n != lastCovered {
			lastCovered, lastChange = n, time.Now()
		}
	}
	row.Lost = e.Sink.Gaps(from, to)
	row.Backlog = lastCovered
	if lastChange.After(recovered) && time.Since(recovered) <= c.DrainTimeout {
		row.Drain = lastChange.Sub(recovered).Seconds()
	}
	if row.Drain > 0 {
		row.DrainFactor = c.Outage.Seconds() / row.Drain
	}
	if d := e.Sink.Stats().Dupes; d > 0 {
		row.Note = joinNote(row.Note, fmt.Sprintf("%d samples delivered twice", d))
	}
	return row, nil
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
