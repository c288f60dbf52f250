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
// Loss is exact: the fleet stops serving at the end and what it served is set against what
// arrived (see settle). The backlog is what was outstanding when the sink came back; it is
// drained when what is outstanding is back to the most seen in the live window (the system's own
// lag, from its batching). The SIGKILL comes while the fleet is paused and the scrapes in flight
// have been handed on, so it meets only data the system accepted: a scrape cut by the kill was
// never accepted, and is not what "nothing accepted is lost" is about. The env's sink must keep
// pairs.
func (e *Env) Outage(ctx context.Context, s System, c OutageConfig) (OutageRow, error) {
	row := OutageRow{System: s.Name, Killed: c.Kill, Drain: -1}
	if c.Poll == 0 {
		c.Poll = 5 * time.Second
	}
	if c.StableFor == 0 {
		c.StableFor = 90 * time.Second
	}
	e.beginAccount()
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
	var lag int64
	for time.Since(liveStart) < c.Live {
		if !sleepCtx(ctx, min(c.Poll, c.Live-time.Since(liveStart))) {
			return row, ctx.Err()
		}
		lag = max(lag, e.outstanding())
	}
	row.LiveRate = float64(e.Sink.Stats().Samples-s0) / time.Since(liveStart).Seconds()

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
			err := e.pauseFor(ctx, func() error {
				if err := proc.Kill(); err != nil {
					return err
				}
				var err error
				if proc, _, err = e.Relaunch(s, p); err != nil {
					return fmt.Errorf("restarting %s after SIGKILL: %w", s.Name, err)
				}
				return nil
			})
			if err != nil {
				return row, err
			}
		}
	}
	recovered := time.Now()
	row.Backlog = e.outstanding()
	e.Sink.SetDown(0)
	if exited, err := proc.Exited(); exited {
		row.Note = fmt.Sprintf("exited during the outage: %v (log %s)", err, filepath.Dir(p.DataDir))
	}
	if err := e.drain(ctx, &row, recovered, lag, c); err != nil {
		return row, err
	}
	acct, err := e.settle(ctx, c.StableFor, c.DrainTimeout)
	if err != nil {
		return row, err
	}
	row.Served, row.Lost = acct.Served, acct.Lost()
	row.Note = joinNote(row.Note, acct.Note())
	if d := e.Sink.Stats().Dupes; d > 0 {
		row.Note = joinNote(row.Note, fmt.Sprintf("%d samples delivered twice", d))
	}
	return row, nil
}

// drain waits until what is outstanding is back to the live lag, or has not shrunk for
// StableFor (what is left then is lost), and records when it last shrank.
func (e *Env) drain(ctx context.Context, row *OutageRow, recovered time.Time, lag int64, c OutageConfig) error {
	least, shrank := e.outstanding(), time.Now()
	for least > lag && time.Since(shrank) < c.StableFor {
		if time.Since(recovered) > c.DrainTimeout {
			row.Note = joinNote(row.Note, "still draining at the timeout")
			return nil
		}
		if !sleepCtx(ctx, time.Second) {
			return ctx.Err()
		}
		if o := e.outstanding(); o < least {
			least, shrank = o, time.Now()
		}
	}
	row.Drain = shrank.Sub(recovered).Seconds()
	if row.Drain > 0 {
		row.DrainRate = float64(row.Backlog) / row.Drain
		row.DrainFactor = c.Outage.Seconds() / row.Drain
	}
	return nil
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
