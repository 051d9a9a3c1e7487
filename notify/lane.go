package notify

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lane is one channel's way out: a bounded queue, one worker that sends in
// order, retries with backoff, and a token bucket whose overflow is summed
// into one later message. A slow or failing channel holds up only itself.
type lane struct {
	ch      Channel
	log     *slog.Logger
	console string
	perMin  float64
	retry   []time.Duration
	attempt time.Duration
	now     func() time.Time

	mu      sync.Mutex
	queue   []Message
	size    int
	wake    chan struct{}
	closing chan struct{} // closed by Close: send what is queued, then stop

	// Only the worker touches these.
	bucket bucket
	held   heldBack
	// heldN mirrors held.n for tests.
	heldN atomic.Int64
}

func newLane(ch Channel, o Options, log *slog.Logger) *lane {
	return &lane{
		ch: ch, log: log.With("channel", ch.Name()), console: o.ConsoleURL, perMin: o.RatePerMin,
		retry: o.Retry, attempt: o.AttemptTimeout, now: o.Now,
		size: o.QueueSize, wake: make(chan struct{}, 1), closing: make(chan struct{}),
		bucket: newBucket(o.RatePerMin, o.Now()),
	}
}

// push queues m; a full queue loses its oldest message, never blocks.
func (l *lane) push(m Message) {
	l.mu.Lock()
	var dropped Message
	full := len(l.queue) >= l.size
	if full {
		dropped = l.queue[0]
		l.queue = slices.Delete(l.queue, 0, 1)
	}
	l.queue = append(l.queue, m)
	l.mu.Unlock()
	if full {
		l.log.Warn("notification queue full: dropped the oldest message", "dropped_kind", dropped.Kind,
			"dropped_event", dropped.EventID, "queue", l.size)
	}
	l.poke()
}

func (l *lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lane) pop() (Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return Message{}, false
	}
	m := l.queue[0]
	l.queue = slices.Delete(l.queue, 0, 1)
	return m, true
}

func (l *lane) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// run sends until the queue is empty after Close, or ctx ends.
func (l *lane) run(ctx context.Context) {
	for {
		l.flush(ctx)
		if m, ok := l.pop(); ok {
			l.handle(ctx, m)
			continue
		}
		var timer *time.Timer
		var refilled <-chan time.Time
		if l.held.n > 0 {
			timer = time.NewTimer(l.bucket.wait(l.now()))
			refilled = timer.C
		}
		select {
		case <-ctx.Done():
		case <-l.wake:
		case <-refilled:
		case <-l.closing:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil || (isClosed(l.closing) && l.queued() == 0) {
			l.stopped(ctx)
			return
		}
	}
}

// stopped says what a stop left unsent.
func (l *lane) stopped(ctx context.Context) {
	if n := l.queued(); n > 0 && ctx.Err() != nil {
		l.log.Warn("notifications not sent: Jarvis stopped first", "count", n)
	}
	if l.held.n > 0 {
		l.log.Warn("held-back notifications not summarised: Jarvis stopped first", "count", l.held.n)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// handle sends m if the rate limit allows, else holds it back for the
// summary. While anything is held back, later messages join it, so the
// summary goes out before them.
func (l *lane) handle(ctx context.Context, m Message) {
	if l.held.n == 0 && l.bucket.take(l.now()) {
		l.deliver(ctx, m)
		return
	}
	if l.held.n == 0 {
		l.log.Info("notification rate limit reached: holding messages back for one summary", "per_minute", l.perMin)
	}
	l.held.add(m)
	l.heldN.Store(int64(l.held.n))
}

// flush sends the summary of what was held back once the bucket has a token.
func (l *lane) flush(ctx context.Context) {
	if l.held.n == 0 || !l.bucket.take(l.now()) {
		return
	}
	m := l.held.summary(l.perMin, l.console, l.now())
	l.held = heldBack{}
	l.heldN.Store(0)
	l.deliver(ctx, m)
}

// deliver tries m until it is sent, refused for good, out of attempts, or ctx
// ends. A refusal is logged with what to fix.
func (l *lane) deliver(ctx context.Context, m Message) {
	log := l.log.With("kind", m.Kind, "event", m.EventID)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, l.attempt)
		err := l.ch.Send(actx, m)
		cancel()
		switch {
		case err == nil:
			log.Debug("notification sent", "attempt", attempt)
			return
		case ctx.Err() != nil:
			log.Warn("notification not sent: Jarvis stopped first", "err", err)
			return
		case IsPermanent(err):
			log.Warn("notification refused; not retrying", "err", err)
			return
		case attempt > len(l.retry):
			log.Warn("notification not delivered", "attempts", attempt, "err", err)
			return
		}
		wait := jitter(l.retry[attempt-1])
		log.Info("notification attempt failed; trying again", "attempt", attempt, "in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Warn("notification not sent: Jarvis stopped first", "err", err)
			return
		case <-t.C:
		}
	}
}

// jitter spreads d over [d/2, 3d/2), so retries of many messages do not
// arrive together.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d)
}

// heldBack is what the rate limit held back since the last summary.
type heldBack struct {
	n     int
	kinds map[string]int
	top   Priority
}

func (h *heldBack) add(m Message) {
	if h.kinds == nil {
		h.kinds = map[string]int{}
	}
	h.n++
	h.kinds[m.Kind]++
	h.top = max(h.top, m.Priority)
}

// summary is the one message that stands for everything held back, as
// urgent as the most urgent of them.
func (h *heldBack) summary(perMin float64, console string, now time.Time) Message {
	type count struct {
		kind string
		n    int
	}
	var counts []count
	for k, n := range h.kinds {
		counts = append(counts, count{k, n})
	}
	slices.SortFunc(counts, func(a, b count) int { return cmp.Or(b.n-a.n, strings.Compare(a.kind, b.kind)) })
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%d %s", c.n, c.kind)
	}
	title, verb := fmt.Sprintf("%d notifications held back", h.n), "were"
	if h.n == 1 {
		title, verb = "1 notification held back", "was"
	}
	return Message{
		ID: randomID("held"), Kind: "held_back", Priority: max(h.top, PriorityDefault), Tags: []string{"hourglass"},
		URL: console, Time: now, Title: title,
		Body: fmt.Sprintf("%s %s held back by the rate limit (%s per minute on this channel): %s; see the console.",
			strings.TrimSuffix(title, " held back"), verb, strconv.FormatFloat(perMin, 'f', -1, 64), strings.Join(parts, ", ")),
	}.cleaned()
}

// randomID is prefix and 16 random hex digits.
func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// bucket is a token bucket: up to a minute's worth of messages at once, then
// one every 60/perMin seconds.
type bucket struct {
	size, perSec, tokens float64
	last                 time.Time
}

func newBucket(perMin float64, now time.Time) bucket {
	size := max(1, perMin)
	return bucket{size: size, perSec: perMin / 60, tokens: size, last: now}
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.size, b.tokens+now.Sub(b.last).Seconds()*b.perSec)
		b.last = now
	}
}

func (b *bucket) take(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// wait is how long until the next token.
func (b *bucket) wait(now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1-b.tokens)/b.perSec*float64(time.Second)) + time.Millisecond
}
