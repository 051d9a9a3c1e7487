package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// runLane starts a lane for ch until the test ends.
func runLane(t *testing.T, ch Channel, opts Options) (*lane, *logBuffer) {
	t.Helper()
	log, logs := newLogger()
	if opts.Retry == nil {
		opts.Retry = fastRetry
	}
	opts.defaults()
	l := newLane(ch, opts, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l, logs
}

// A receiver that fails for a while gets the message once it recovers, and
// exactly once; one that refuses it for good is asked once.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		failures  int
		requests  int
		delivered bool
		log       string
	}{
		{"503 twice, then ok", http.StatusServiceUnavailable, 2, 3, true, "trying again"},
		{"429 once, then ok", http.StatusTooManyRequests, 1, 2, true, "trying again"},
		{"408 once, then ok", http.StatusRequestTimeout, 1, 2, true, "trying again"},
		{"400 is not retried", http.StatusBadRequest, 1, 1, false, "not retrying"},
		{"401 is not retried, and says what to fix", http.StatusUnauthorized, 1, 1, false, "set JARVIS_NOTIFY_NTFY_TOKEN"},
		{"always 500: five attempts", http.StatusInternalServerError, 100, 5, false, "notification not delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, _ request) (int, string) {
				if n <= tc.failures {
					return tc.status, "nope"
				}
				return http.StatusOK, "{}"
			})
			ch, _ := NewNtfy(rc.URL+"/topic", "")
			l, logs := runLane(t, ch, Options{})
			l.push(sampleMessage())
			waitFor(t, "the lane to finish", func() bool {
				return strings.Contains(logs.String(), "notification sent") || strings.Contains(logs.String(), "level=WARN")
			})
			got := rc.requests()
			if len(got) != tc.requests {
				t.Errorf("%d requests, want %d", len(got), tc.requests)
			}
			if sent := strings.Contains(logs.String(), "notification sent"); sent != tc.delivered {
				t.Errorf("delivered %v, want %v\n%s", sent, tc.delivered, logs)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logs)
			}
		})
	}
}

// The rate limit holds back what exceeds it and sums it up in one message
// when the bucket refills; that summary is as urgent as the most urgent of them.
func TestRateLimitSummarisesWhatItHeldBack(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	l, logs := runLane(t, rec, Options{RatePerMin: 2, Now: clock.Now, ConsoleURL: "https://jarvis.example/"})
	for i, kind := range []string{"alert.raised", "alert.raised", "alert.raised", "approval.requested", "alert.raised"} {
		p := PriorityHigh
		if i == 3 {
			p = PriorityUrgent
		}
		l.push(Message{ID: fmt.Sprint(i), Kind: kind, Title: fmt.Sprint("message ", i), Priority: p})
	}
	waitFor(t, "two sent and three held back", func() bool { return len(rec.got()) == 2 && l.heldN.Load() == 3 })
	if !strings.Contains(logs.String(), "rate limit reached") {
		t.Errorf("holding back was not logged:\n%s", logs)
	}

	clock.Advance(30 * time.Second) // one token, at 2 a minute
	l.poke()
	waitFor(t, "the summary", func() bool { return len(rec.got()) == 3 })
	got := rec.got()
	if got[0].ID != "0" || got[1].ID != "1" {
		t.Errorf("sent first: %q, %q", got[0].ID, got[1].ID)
	}
	s := got[2]
	if s.Kind != "held_back" || s.Priority != PriorityUrgent || s.URL != "https://jarvis.example/" ||
		!strings.Contains(s.Body, "3 notifications were held back") || !strings.Contains(s.Body, "2 alert.raised, 1 approval.requested") ||
		!strings.Contains(s.Body, "see the console") {
		t.Errorf("summary: %+v", s)
	}
	if l.heldN.Load() != 0 {
		t.Errorf("still holding %d", l.heldN.Load())
	}

	// With the bucket empty again, the next message waits for the next summary.
	l.push(Message{ID: "later", Kind: "alert.resolved", Priority: PriorityLow})
	waitFor(t, "it to be held", func() bool { return l.heldN.Load() == 1 })
	clock.Advance(30 * time.Second)
	l.poke()
	waitFor(t, "the second summary", func() bool { return len(rec.got()) == 4 })
	if s := rec.got()[3]; !strings.Contains(s.Body, "1 notification was held back") || s.Priority != PriorityDefault {
		t.Errorf("second summary: %+v", s)
	}
}

// blockingChannel holds every Send until released.
type blockingChannel struct {
	recorder
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingChannel) Send(ctx context.Context, m Message) error {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return b.recorder.Send(ctx, m)
}

// A channel that cannot keep up loses its oldest messages, says so, and
// never blocks whoever queues.
func TestFullQueueDropsTheOldest(t *testing.T) {
	ch := &blockingChannel{started: make(chan struct{}), release: make(chan struct{})}
	l, logs := runLane(t, ch, Options{QueueSize: 3, RatePerMin: 100})
	l.push(Message{ID: "m0"})
	<-ch.started // m0 is being sent; the queue is empty
	for i := 1; i <= 5; i++ {
		l.push(Message{ID: fmt.Sprint("m", i)})
	}
	close(ch.release)
	waitFor(t, "the queue to drain", func() bool { return len(ch.got()) == 4 })
	var ids []string
	for _, m := range ch.got() {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "m0,m3,m4,m5" {
		t.Errorf("sent %v", ids)
	}
	if n := strings.Count(logs.String(), "dropped the oldest"); n != 2 {
		t.Errorf("%d drops logged:\n%s", n, logs)
	}
}

func TestBucket(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := newBucket(20, now)
	for i := range 20 {
		if !b.take(now) {
			t.Fatalf("token %d refused", i)
		}
	}
	if b.take(now) {
		t.Fatal("a 21st token in the same instant")
	}
	if w := b.wait(now); w < 3*time.Second || w > 3*time.Second+10*time.Millisecond {
		t.Errorf("wait %v, want about 3s at 20 a minute", w)
	}
	if !b.take(now.Add(3 * time.Second)) {
		t.Error("no token after 3s")
	}
}
