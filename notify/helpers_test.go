package notify

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// openStore opens a store on a fresh database: an SQLite file, or PostgreSQL
// with JARVIS_TEST_DATABASE_URL (storetest).
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(storetest.Target(t), store.Options{AuditKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// publish stores an event with d as its details.
func publish(t *testing.T, st *store.Store, severity, summary string, d store.EventDetails) store.Event {
	t.Helper()
	ev := store.Event{Type: d.Kind(), Severity: severity, Source: "test", Summary: summary, Details: store.EncodeDetails(d)}
	if err := st.Publish(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// recorder is a channel that keeps what it is sent; fail, when set, answers
// each attempt instead.
type recorder struct {
	name string
	mu   sync.Mutex
	msgs []Message
	fail func(Message) error
}

func (r *recorder) Name() string {
	if r.name == "" {
		return "recorder"
	}
	return r.name
}

func (r *recorder) Send(_ context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) got() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

func kinds(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Kind
	}
	return out
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitFor polls cond until it holds, failing the test after 10 s. It waits
// for something to happen; it asserts nothing about how long that took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fastRetry retries quickly, so tests do not wait out real backoff.
var fastRetry = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}

// startNotifier runs a notifier on st until the test ends, and returns once
// it has read its starting point (the cursor is stored), so every event
// published afterwards is news to it. stop ends it early; calling it twice is safe.
func startNotifier(t *testing.T, st *store.Store, opts Options) (stop func()) {
	t.Helper()
	opts.Store = st
	if opts.Retry == nil {
		opts.Retry = fastRetry
	}
	if opts.ConsoleURL == "" {
		opts.ConsoleURL = "https://jarvis.example/"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			n.Close()
		})
	}
	t.Cleanup(stop)
	waitFor(t, "the notifier to store its cursor", func() bool {
		_, found, _ := st.GetPreference(context.Background(), CursorKey)
		return found
	})
	return stop
}
