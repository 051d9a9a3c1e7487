package store

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Events other processes store reach this process's subscribers through
// FollowOtherWriters. The events table is the source of truth: a follower
// delivers whatever is stored above the last id it delivered (catchUp), so
// it can be woken any number of times, early or late, and never skips or
// repeats an event. SQLite has no way to announce a commit, so the follower
// polls. On PostgreSQL every transaction that inserts events notifies
// eventsChannel at commit (a trigger of schema version 1, announceEvents),
// and the follower listens on a connection of its own.

// eventsChannel is the PostgreSQL notification channel of new events.
const eventsChannel = "jarvis_events"

// Timings of the follower on PostgreSQL.
const (
	// pollWithListener is how often it reads the table anyway: a safety net
	// under the notifications, should the listener be stuck.
	pollWithListener = 5 * time.Second
	// listenerReconnectDelay is how long it waits before it connects again
	// after losing its connection; it then reads what it missed.
	listenerReconnectDelay = time.Second
)

// FollowOtherWriters delivers events written by other processes to this
// process's subscribers until ctx ends. On SQLite it reads the events table
// every interval. On PostgreSQL it delivers as soon as another process's
// events commit, and reads the table only every 5 s (or every, if longer)
// besides.
func (s *Store) FollowOtherWriters(ctx context.Context, every time.Duration) {
	if s.listen != nil {
		listening := make(chan struct{})
		defer func() { <-listening }()
		go func() {
			defer close(listening)
			s.listenForEvents(ctx)
		}()
		every = max(every, pollWithListener)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.deliverOthers(ctx)
	}
}

// deliverOthers delivers what other processes stored since the last event
// delivered.
func (s *Store) deliverOthers(ctx context.Context) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.catchUp(ctx, math.MaxInt64)
}

// listenForEvents delivers other processes' events as their notifications
// arrive, until ctx ends. On every connection, after LISTEN, it delivers
// what was stored meanwhile (the backlog): nothing committed while it was
// disconnected waits for the poll.
func (s *Store) listenForEvents(ctx context.Context) {
	l := &pgxlisten.Listener{
		Connect:        func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, s.listen.Copy()) },
		ReconnectDelay: listenerReconnectDelay,
	}
	l.Handle(eventsChannel, eventsHandler{s})
	_ = l.Listen(ctx) // returns when ctx ends; lost connections are retried
}

// eventsHandler wakes the follower on a notification and on a new connection.
type eventsHandler struct{ s *Store }

func (h eventsHandler) HandleNotification(ctx context.Context, _ *pgconn.Notification, _ *pgx.Conn) error {
	h.s.deliverOthers(ctx)
	return nil
}

func (h eventsHandler) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	h.s.deliverOthers(ctx)
	return nil
}
