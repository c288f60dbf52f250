package join

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds the per-user buckets; idle ones (full again) are dropped first.
const maxLimiters = 4096

// limiters keeps one token bucket per authenticated user, so one caller's flood leaves the
// others their share.
type limiters struct {
	limit RateLimit
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLimiters(l RateLimit) *limiters {
	return &limiters{limit: l, now: time.Now, m: map[string]*rate.Limiter{}}
}

// allow takes a token from user's bucket, or says how long until one is there.
func (l *limiters) allow(user string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.m[user]
	if !ok {
		if len(l.m) >= maxLimiters {
			l.dropIdle(now)
		}
		lim = rate.NewLimiter(rate.Limit(l.limit.QPS), l.limit.Burst)
		l.m[user] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (l *limiters) dropIdle(now time.Time) {
	for u, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.limit.Burst) {
			delete(l.m, u)
		}
	}
}
