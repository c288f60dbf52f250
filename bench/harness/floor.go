package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Floor is the least work any scraper must do: fetch every target's endpoints each interval and
// discard the bodies, counting sample lines so its cost per sample compares with the systems'.
type Floor struct {
	Targets     []string // host:port
	Paths       []string
	Interval    time.Duration
	Concurrency int
	Client      *http.Client

	samples atomic.Int64
	series  atomic.Int64 // sample lines in the last complete round
}

// Run fetches every interval until ctx ends; after each round it writes "samples <total> series
// <lines in the round>" to out.
func (f *Floor) Run(ctx context.Context, out io.Writer) error {
	if f.Client == nil {
		f.Client = &http.Client{Timeout: f.Interval}
	}
	if f.Concurrency < 1 {
		f.Concurrency = 32
	}
	tick := time.NewTicker(f.Interval)
	defer tick.Stop()
	for {
		n := f.round(ctx)
		f.series.Store(n)
		fmt.Fprintf(out, "samples %d series %d\n", f.samples.Load(), n)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (f *Floor) round(ctx context.Context) int64 {
	jobs := make(chan string)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range f.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReaderSize(nil, 64<<10)
			for u := range jobs {
				n := f.fetch(ctx, u, br)
				total.Add(n)
				f.samples.Add(n)
			}
		}()
	}
	for _, t := range f.Targets {
		for _, p := range f.Paths {
			select {
			case jobs <- "http://" + t + p:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
	return total.Load()
}

// fetch GETs u and counts lines that are neither comments nor empty.
func (f *Floor) fetch(ctx context.Context, u string, br *bufio.Reader) int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	br.Reset(resp.Body)
	var n int64
	lineStart := true
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 && lineStart && b[0] != '#' && b[0] != '\n' {
			n++
		}
		switch err {
		case nil:
			lineStart = true
		case bufio.ErrBufferFull:
			lineStart = false
		default:
			return n
		}
	}
}
