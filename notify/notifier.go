package notify

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

// CursorKey is the store preference that holds the id of the last event the
// notifier handled, so a restart neither repeats nor skips.
const CursorKey = "notify.cursor"

// Options configures a Notifier. Zero values mean the defaults in brackets.
type Options struct {
	Store    *store.Store
	Channels []Channel
	// ConsoleURL is the console's address as people open it; links in
	// messages point into it.
	ConsoleURL string
	// RatePerMin is how many messages each channel may send per minute
	// [20]; what it holds back is summed into one later message.
	RatePerMin float64
	Logger     *slog.Logger

	// Retry is the wait before each further attempt, each spread by ±50 %
	// [1s 2s 4s 8s: five attempts]; empty but not nil means one attempt.
	Retry []time.Duration
	// AttemptTimeout bounds one attempt [10s].
	AttemptTimeout time.Duration
	// QueueSize is how many messages wait per channel before the oldest is dropped [100].
	QueueSize int
	// DedupWindow is how long a message with the same dedup key and state is
	// not sent again [10m].
	DedupWindow time.Duration
	// StaleAfter: events older than this are no news and are skipped, as
	// after a long stop [1h].
	StaleAfter time.Duration
	// Poll is how often the store is read without a wake-up [5s]: events of
	// other processes sharing the database arrive at the latest then.
	Poll time.Duration
	// DrainTimeout is how long Close waits for queued messages, and how long
	// Run's last read, when its context has ended, may take [5s].
	DrainTimeout time.Duration
	// Now is the clock [time.Now].
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.RatePerMin <= 0 {
		o.RatePerMin = 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Retry == nil {
		o.Retry = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 100
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 10 * time.Minute
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = time.Hour
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// pageSize is how many events one read of the store returns.
const pageSize = 500

// cursorEvery is how often the cursor is saved when only events that make no
// message went by; after a message it is saved at once.
const cursorEvery = 30 * time.Second

// Notifier follows the feed's events in the store and sends the ones that
// matter to every channel. Run follows; Close drains.
type Notifier struct {
	opts  Options
	st    *store.Store
	log   *slog.Logger
	lanes []*lane

	// Only Run touches these.
	cursor  uint64
	saved   uint64
	savedAt time.Time
	sent    map[string]sentState // dedup key → last state sent
	readErr string               // the last failure to read the feed, said once

	cancel    context.CancelFunc // the lanes'
	stopping  func()             // tests: called when Run's context has ended, before the last read
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type sentState struct {
	state string
	at    time.Time
}

// New starts one worker per channel; Run feeds them.
func New(opts Options) (*Notifier, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: no store")
	}
	if len(opts.Channels) == 0 {
		return nil, errors.New("notify: no channel")
	}
	opts.defaults()
	n := &Notifier{opts: opts, st: opts.Store, log: opts.Logger.With("component", "notify"), sent: map[string]sentState{}}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for _, ch := range opts.Channels {
		l := newLane(ch, opts, n.log)
		n.lanes = append(n.lanes, l)
		n.wg.Go(func() { l.run(ctx) })
	}
	return n, nil
}

// Run follows the feed until ctx ends. It reads the store in id order after
// its cursor — a live subscription only wakes it — so it sees the events of
// every process sharing the database and misses none when it is slow. When
// ctx ends it reads once more, for up to DrainTimeout, queues what it finds
// for Close to send, and saves its cursor; end ctx only once what should
// still be announced (calls the shutdown cut short) has been published. When
// ctx ends with the cause store.ErrLeaseLost, another replica goes on from
// the stored cursor: Run neither reads nor saves the cursor again, so it
// sends nothing that one sends and cannot move the cursor back under it.
func (n *Notifier) Run(ctx context.Context) {
	tick := time.NewTicker(n.opts.Poll)
	defer tick.Stop()
	sub := n.st.Subscribe(64)
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	wake := sub.C()
	started := false
	for {
		if !started {
			started = n.start(ctx)
		}
		if started {
			n.catchUp(ctx)
		}
		select {
		case <-ctx.Done():
			if started && !errors.Is(context.Cause(ctx), store.ErrLeaseLost) {
				n.finalCatchUp(context.WithoutCancel(ctx))
			}
			return
		case _, ok := <-wake:
			if !ok { // dropped for being slow, or the store closed: follow again at the next poll
				sub.Close()
				sub, wake = nil, nil
			}
			for len(wake) > 0 {
				<-wake
			}
		case <-tick.C:
			if sub == nil {
				sub = n.st.Subscribe(64)
				wake = sub.C()
			}
		}
	}
}

// finalCatchUp queues what was published after the last read — the end of
// calls cut short by the shutdown, a wake-up that lost the race with the stop
// — for Close to send, and saves the cursor. It reads for at most
// DrainTimeout: what it misses waits for the next start, as before.
func (n *Notifier) finalCatchUp(ctx context.Context) {
	if n.stopping != nil {
		n.stopping()
	}
	rctx, cancel := context.WithTimeout(ctx, n.opts.DrainTimeout)
	defer cancel()
	n.catchUp(rctx)
	sctx, cancel := context.WithTimeout(ctx, n.opts.DrainTimeout)
	defer cancel()
	n.saveCursor(sctx, true) // even when the read ran out of time
}

// start reads the cursor. Without one, the notifier starts at the feed's
// head: what happened before it was set up is no news.
func (n *Notifier) start(ctx context.Context) bool {
	head, err := n.st.LastEventID(ctx)
	if err != nil {
		n.readFailed(ctx, err)
		return false
	}
	v, found, err := n.st.GetPreference(ctx, CursorKey)
	if err != nil {
		n.readFailed(ctx, err)
		return false
	}
	stored, perr := strconv.ParseUint(v, 10, 64)
	cursor := stored
	switch {
	case !found:
		n.log.Info("notifications start at the feed's head", "event", head)
		cursor = head
	case perr != nil:
		n.log.Warn("notification cursor unreadable: starting at the feed's head", "event", head)
		cursor = head
	case cursor > head:
		n.log.Info("notification cursor is past the newest event (a new database, or the newest events were pruned): starting at the newest", "cursor", cursor, "event", head)
		cursor = head
	default:
		n.log.Info("notifications resume", "after_event", cursor, "behind", head-cursor)
	}
	n.cursor = cursor
	n.saved = ^uint64(0) // unknown: save now, so a restart starts here
	if found && perr == nil && stored == cursor {
		n.saved, n.savedAt = cursor, n.opts.Now()
	}
	if n.cursor != n.saved {
		n.writeCursor(ctx) // also back, past the newest event
	}
	return true
}

// catchUp handles every event after the cursor, page by page.
func (n *Notifier) catchUp(ctx context.Context) {
	stale, queued := 0, 0
	for ctx.Err() == nil {
		events, err := n.st.EventsAfter(ctx, n.cursor, pageSize)
		if err != nil {
			n.readFailed(ctx, err)
			break
		}
		n.readOK()
		now := n.opts.Now()
		for _, ev := range events {
			n.cursor = ev.ID
			nt, ok := noticeFor(ev, n.opts.ConsoleURL)
			switch {
			case !ok:
			case now.Sub(ev.Time) > n.opts.StaleAfter:
				stale++
			case n.repeat(nt):
				n.log.Debug("notification is a repeat; not sent", "kind", nt.Kind, "event", ev.ID)
			default:
				queued++
				for _, l := range n.lanes {
					l.push(nt.Message)
				}
			}
		}
		if len(events) < pageSize {
			break
		}
	}
	if stale > 0 {
		n.log.Info("skipped stale notifications", "count", stale, "older_than", n.opts.StaleAfter)
	}
	n.saveCursor(ctx, queued > 0 || stale > 0)
}

// repeat reports whether nt's key was sent with the same state within the
// dedup window, and remembers it when not. Time is the event's, so a replay
// judges as the first pass did.
func (n *Notifier) repeat(nt notice) bool {
	if nt.key == "" {
		return false
	}
	for k, s := range n.sent {
		if nt.Time.Sub(s.at) >= n.opts.DedupWindow {
			delete(n.sent, k)
		}
	}
	if s, ok := n.sent[nt.key]; ok && s.state == nt.state {
		return true
	}
	n.sent[nt.key] = sentState{state: nt.state, at: nt.Time}
	return false
}

// saveCursor stores the cursor: at once when now is set (a message was
// queued or a stale one skipped, or Run ends), else at most every cursorEvery.
func (n *Notifier) saveCursor(ctx context.Context, now bool) {
	if n.cursor == n.saved || (!now && n.opts.Now().Sub(n.savedAt) < cursorEvery) {
		return
	}
	// A stop slower than its lease: another replica may notify by now, and
	// have moved the cursor on. Never move it back (start does, past the
	// newest event).
	if v, found, err := n.st.GetPreference(ctx, CursorKey); err == nil && found {
		if stored, err := strconv.ParseUint(v, 10, 64); err == nil && stored > n.cursor {
			return
		}
	}
	n.writeCursor(ctx)
}

// writeCursor stores the cursor as it is.
func (n *Notifier) writeCursor(ctx context.Context) {
	if err := n.st.SetPreference(ctx, CursorKey, strconv.FormatUint(n.cursor, 10)); err != nil {
		if ctx.Err() != nil {
			return // cut short by the stop: Run saves it once more as it ends
		}
		n.log.Warn("could not save the notification cursor; a restart may repeat messages", "err", err)
		return
	}
	n.saved, n.savedAt = n.cursor, n.opts.Now()
}

// readFailed logs a failure to read the feed once per cause; Run tries again
// at the next wake-up or poll. A read cut short by the stop is no failure.
func (n *Notifier) readFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if err.Error() != n.readErr {
		n.readErr = err.Error()
		n.log.Warn("notifications cannot read the feed; trying again", "err", err)
	}
}

func (n *Notifier) readOK() {
	if n.readErr != "" {
		n.readErr = ""
		n.log.Info("notifications read the feed again")
	}
}

// Close lets each channel send what is queued, including what Run's last
// read found, for up to DrainTimeout, then stops it. Call it after Run has
// returned.
func (n *Notifier) Close() {
	n.closeOnce.Do(func() {
		for _, l := range n.lanes {
			close(l.closing)
		}
		done := make(chan struct{})
		go func() {
			n.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(n.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			n.cancel()
			<-done
		}
		n.cancel()
	})
}

// TestMessage is the message `jarvis notify test` sends.
func TestMessage(console string, now time.Time) Message {
	return Message{
		ID: randomID("test"), Kind: "test", Title: "Jarvis test notification", Priority: PriorityDefault,
		Tags: []string{"white_check_mark", "test"}, URL: console, Time: now,
		Body: "This is a test from jarvis notify test. If you read it, Jarvis can reach you here.",
	}.cleaned()
}
