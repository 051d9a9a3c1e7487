package safety

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits sets the token buckets per tier. Green is never limited.
type RateLimits struct {
	Yellow, Red           rate.Limit
	YellowBurst, RedBurst int
}

// DefaultRateLimits are the limits used when a field is left zero.
//
// Yellow: 30 per minute with a burst of 10. A legitimate batch (start the ten
// guests of a lab) fits in the burst, while an agent stuck in a retry loop is
// slowed to one change every two seconds, which a watching human can notice.
//
// Red: 10 per minute with a burst of 3. Every RED call lands in front of a
// human approver; more than a few pending at once is noise that hides the one
// that matters, so the bucket protects the approver's attention.
var DefaultRateLimits = RateLimits{
	Yellow: rate.Every(time.Minute / 30), YellowBurst: 10,
	Red: rate.Every(time.Minute / 10), RedBurst: 3,
}

// maxRateBuckets bounds memory: principals come from issued tokens, so far
// fewer than this exist in practice.
const maxRateBuckets = 4096

type bucketKey struct {
	principal string
	tier      Tier
}

type bucket struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

// RateLimiter keeps one token bucket per principal and tier, in memory.
type RateLimiter struct {
	limits RateLimits
	max    int

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

// NewRateLimiter builds a limiter; zero fields of l take DefaultRateLimits.
func NewRateLimiter(l RateLimits) *RateLimiter {
	if l.Yellow <= 0 {
		l.Yellow = DefaultRateLimits.Yellow
	}
	if l.Red <= 0 {
		l.Red = DefaultRateLimits.Red
	}
	if l.YellowBurst <= 0 {
		l.YellowBurst = DefaultRateLimits.YellowBurst
	}
	if l.RedBurst <= 0 {
		l.RedBurst = DefaultRateLimits.RedBurst
	}
	return &RateLimiter{limits: l, max: maxRateBuckets, buckets: make(map[bucketKey]*bucket)}
}

// Allow takes one token for (principalID, tier) at time now. When it refuses,
// retryAfter says how long until a token will be available. Green is never
// limited; Black and unknown tiers share Red's (strictest) settings, although
// Decide refuses them before they get here.
func (r *RateLimiter) Allow(principalID string, tier Tier, now time.Time) (ok bool, retryAfter time.Duration) {
	if tier == Green {
		return true, 0
	}
	limit, burst := r.limits.Red, r.limits.RedBurst
	if tier == Yellow {
		limit, burst = r.limits.Yellow, r.limits.YellowBurst
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	key := bucketKey{principalID, tier}
	b, found := r.buckets[key]
	if !found {
		if len(r.buckets) >= r.max {
			r.evict(now)
		}
		b = &bucket{limiter: rate.NewLimiter(limit, burst)}
		r.buckets[key] = b
	}
	if now.After(b.lastSeen) {
		b.lastSeen = now
	}
	res := b.limiter.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Duration(1<<63 - 1)
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now) // give the token back: a refused call must not consume it
		return false, d
	}
	return true, 0
}

// evict drops buckets that have refilled completely (forgetting them changes
// nothing), and if none has, the least recently used one. Called with r.mu held.
func (r *RateLimiter) evict(now time.Time) {
	var oldestKey bucketKey
	var oldest time.Time
	first := true
	for k, b := range r.buckets {
		if b.limiter.TokensAt(now) >= float64(b.limiter.Burst()) {
			delete(r.buckets, k)
			continue
		}
		if first || b.lastSeen.Before(oldest) {
			oldestKey, oldest, first = k, b.lastSeen, false
		}
	}
	if len(r.buckets) >= r.max && !first {
		delete(r.buckets, oldestKey)
	}
}
