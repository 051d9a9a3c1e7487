package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Event is one entry of the feed.
type Event struct {
	ID         uint64          `json:"id"` // sequence number, monotonically increasing
	Time       time.Time       `json:"time"`
	Type       string          `json:"type"`     // tool|approval|cluster|alert|safety|system (EventTool…)
	Severity   string          `json:"severity"` // info|warning|critical (SeverityInfo…)
	Source     string          `json:"source"`
	Cluster    string          `json:"cluster,omitempty"` // the cluster it is about; "" for the only one, or none
	Node       string          `json:"node,omitempty"`
	Summary    string          `json:"summary"`
	Details    json.RawMessage `json:"details,omitempty"` // one type per kind: event_kinds.go
	Resolved   bool            `json:"resolved"`
	ResolvedAt *time.Time      `json:"resolved_at,omitempty"`
	ResolvedBy string          `json:"resolved_by,omitempty"`
}

// Event types and severities accepted by Publish.
var (
	eventTypes = map[string]bool{EventTool: true, EventApproval: true, EventCluster: true, EventRule: true,
		EventAlert: true, EventSafety: true, EventSystem: true}
	eventSeverities = map[string]bool{SeverityInfo: true, SeverityWarning: true, SeverityCritical: true}
)

// Limits on how many events one query returns.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

// eventRecord is the events table. AUTOINCREMENT (from the autoIncrement
// tag; a sequence on PostgreSQL) keeps IDs from being reused even if the
// newest rows are deleted, so an SSE client's Last-Event-ID never points at
// a different event.
type eventRecord struct {
	ID           uint64 `gorm:"primaryKey;autoIncrement"`
	TimeNS       int64  `gorm:"not null;index"`
	Type         string `gorm:"not null;index"`
	Severity     string `gorm:"not null"`
	Source       string `gorm:"not null"`
	Node         string `gorm:"not null;default:'';index"`
	Summary      string `gorm:"not null"`
	Details      string `gorm:"type:text;not null;default:''"`
	Resolved     bool   `gorm:"not null;default:false"`
	ResolvedAtNS *int64
	ResolvedBy   string `gorm:"not null;default:''"`
	Cluster      string `gorm:"not null;default:'';index"`
}

func (eventRecord) TableName() string { return "events" }

func (r eventRecord) event() Event {
	e := Event{
		ID: r.ID, Time: fromNS(r.TimeNS), Type: r.Type, Severity: r.Severity, Source: r.Source,
		Cluster: r.Cluster, Node: r.Node, Summary: r.Summary, Resolved: r.Resolved,
		ResolvedAt: fromNSPtr(r.ResolvedAtNS), ResolvedBy: r.ResolvedBy,
	}
	if r.Details != "" {
		e.Details = json.RawMessage(r.Details)
	}
	return e
}

func eventsOf(recs []eventRecord) []Event {
	out := make([]Event, len(recs))
	for i, r := range recs {
		out[i] = r.event()
	}
	return out
}

// Publish stores e, assigning its ID and Time (written back into e), and then
// hands a copy to every live subscriber. It never waits for a subscriber: one
// whose buffer is full is dropped. An empty Severity means "info".
func (s *Store) Publish(ctx context.Context, e *Event) error {
	rec, err := s.eventRecordOf(e)
	if err != nil {
		return err
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if err := s.insertEvent(ctx, &rec); err != nil {
		return fmt.Errorf("publish event %q: store it: %w", e.Summary, err)
	}
	*e = rec.event()
	s.deliverLocked(ctx, e)
	return nil
}

// eventRecordOf checks e and makes the row that stores it (without its ID).
func (s *Store) eventRecordOf(e *Event) (eventRecord, error) {
	if e == nil {
		return eventRecord{}, errors.New("publish event: event is nil")
	}
	if e.Severity == "" {
		e.Severity = SeverityInfo
	}
	if !eventTypes[e.Type] {
		return eventRecord{}, fmt.Errorf("publish event: unknown type %q (want tool, approval, cluster, alert, safety or system)", e.Type)
	}
	if !eventSeverities[e.Severity] {
		return eventRecord{}, fmt.Errorf("publish event: unknown severity %q (want info, warning or critical)", e.Severity)
	}
	if e.Summary == "" {
		return eventRecord{}, errors.New("publish event: summary is empty")
	}
	details := ""
	if len(e.Details) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Details); err != nil {
			return eventRecord{}, fmt.Errorf("publish event: details are not valid JSON: %w", err)
		}
		// Compact lets bytes that are not UTF-8 through inside strings;
		// replaced there, the JSON stays valid.
		details = cleanText(buf.String())
	}
	// Summaries and details quote clusters and commands (text.go).
	return eventRecord{
		TimeNS: s.now().UnixNano(), Type: e.Type, Severity: e.Severity, Source: cleanText(e.Source),
		Cluster: cleanText(e.Cluster), Node: cleanText(e.Node), Summary: cleanText(e.Summary), Details: details,
		Resolved: e.Resolved, ResolvedAtNS: toNSPtr(e.ResolvedAt), ResolvedBy: cleanText(e.ResolvedBy),
	}, nil
}

// insertEventSQL stores one event in plain SQL: every tool call publishes one,
// and gorm's reflection cost as much as the insert (BENCHMARKS.md).
const insertEventSQL = `INSERT INTO events (time_ns, type, severity, source, node, summary, details, resolved, resolved_at_ns, resolved_by, cluster)
	VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id`

// insertEvent stores rec and sets its ID. Ids must commit in id order, or a
// follower reading "id > last" passes one that commits later: a lone insert
// does on SQLite, elsewhere inserts take turns on the events lock.
func (s *Store) insertEvent(ctx context.Context, rec *eventRecord) error {
	if s.d.oneWriter() {
		return s.stmts.insertEvent.QueryRowContext(ctx, rec.insertArgs()...).Scan(&rec.ID)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.d.lock(tx, lockEvents); err != nil {
			return err
		}
		insert := tx.Statement.ConnPool.(*sql.Tx).StmtContext(ctx, s.stmts.insertEvent)
		return insert.QueryRowContext(ctx, rec.insertArgs()...).Scan(&rec.ID)
	})
}

func (r eventRecord) insertArgs() []any {
	return []any{r.TimeNS, r.Type, r.Severity, r.Source, r.Node, r.Summary, r.Details, r.Resolved, r.ResolvedAtNS, r.ResolvedBy, r.Cluster}
}

// deliverLocked hands the stored event e to the live subscribers, after any
// event below it that was not delivered yet (another process's, or one stored
// by a transaction that committed before e's). An event already passed — a
// later Publish delivered it on its way — is not delivered twice. Callers hold
// publishMu.
func (s *Store) deliverLocked(ctx context.Context, e *Event) {
	// The event is stored: delivering it must not depend on the caller still
	// waiting (a cancelled request context would skip other processes' events).
	// If earlier events could not be read, e waits too: subscribers must get
	// events in ID order, and FollowOtherWriters delivers all of them shortly.
	if e.ID > s.fanned && s.catchUp(context.WithoutCancel(ctx), e.ID) {
		shared := *e // the caller may reuse e; subscribers share this copy
		s.fanOut(&shared)
		s.fanned = e.ID
	}
}

// catchUp fans out, in ID order, events that other processes sharing the
// database (jarvis approve, a stdio session) wrote below id. Callers hold publishMu.
// It reports whether everything below was delivered; when a read fails, fanned
// stays below the gap so the follower tries again.
func (s *Store) catchUp(ctx context.Context, below uint64) bool {
	for s.fanned+1 < below {
		recs := []eventRecord{}
		err := s.db.WithContext(ctx).Where("id > ? AND id < ?", s.fanned, below).Order("id ASC").Limit(maxEventLimit).Find(&recs).Error
		if err != nil {
			return false
		}
		if len(recs) == 0 {
			return true // a gap left by a rolled-back insert
		}
		for _, r := range recs {
			ev := r.event()
			s.fanOut(&ev)
			s.fanned = r.ID
		}
	}
	return true
}

// SubscriberCount is the number of live subscribers.
func (s *Store) SubscriberCount() int {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return len(s.subs)
}

// fanOut delivers e to every subscriber without blocking; a subscriber whose
// buffer is full is dropped so it can reconnect and replay from the store.
func (s *Store) fanOut(e *Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		select {
		case sub.ch <- e:
		default:
			delete(s.subs, sub)
			sub.end(true)
		}
	}
}

// Subscription receives live events from Publish.
type Subscription struct {
	store   *Store
	ch      chan *Event
	done    chan struct{}
	once    sync.Once
	dropped bool // set before done closes; read after <-Done()
}

// Subscribe registers a live subscriber with room for buffer undelivered
// events (at least 1). When the buffer is full at a Publish the subscriber is
// dropped: Done is closed, then C is closed.
//
// To follow the feed without gap or duplicate: Subscribe first, then replay
// with EventsAfter(lastSeenID, …) until it returns fewer than asked, remember
// the last replayed ID, and while reading C skip every event whose ID is at or
// below it. Subscribing first means nothing published during the replay is
// missed; the skip removes what both paths delivered.
func (s *Store) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	sub := &Subscription{store: s, ch: make(chan *Event, buffer), done: make(chan struct{})}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closed {
		sub.end(false)
		return sub
	}
	s.subs[sub] = struct{}{}
	return sub
}

// C delivers events in ID order. It is closed when the subscription ends.
// Every subscriber gets the same *Event: read it, never change it. (A pointer
// keeps an idle subscriber's buffer at 2 KiB instead of 43 KiB; BENCHMARKS.md.)
func (sub *Subscription) C() <-chan *Event { return sub.ch }

// Done is closed when the subscription ends: dropped for being slow, closed
// by the caller, or the store closed.
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// Close ends the subscription. Safe to call more than once.
func (sub *Subscription) Close() {
	s := sub.store
	s.subMu.Lock()
	defer s.subMu.Unlock()
	delete(s.subs, sub)
	sub.end(false)
}

// end closes the channels once. Callers hold store.subMu, which is also held
// while sending, so no send can hit a closed channel.
func (sub *Subscription) end(dropped bool) {
	sub.once.Do(func() {
		sub.dropped = dropped
		close(sub.done)
		close(sub.ch)
	})
}

// EventsAfter returns up to limit events with ID > afterID, oldest first, for
// replay to a reconnecting client. limit <= 0 means 100; at most 1000.
func (s *Store) EventsAfter(ctx context.Context, afterID uint64, limit int) ([]Event, error) {
	var recs []eventRecord
	err := s.db.WithContext(ctx).Where("id > ?", afterID).Order("id ASC").
		Limit(clampLimit(limit, defaultEventLimit, maxEventLimit)).Find(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", afterID, err)
	}
	return eventsOf(recs), nil
}

// EventFilter narrows ListEvents. Zero fields do not filter.
type EventFilter struct {
	Limit          int // <= 0 means 100; at most 1000
	Type, Node     string
	Cluster        string    // Event.Cluster exactly
	InClusters     []string  // Event.Cluster is one of these ("" too, when listed)
	Since          time.Time // events at or after this time
	UnresolvedOnly bool
}

// ListEvents returns events matching f, newest first.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	q := s.db.WithContext(ctx).Model(&eventRecord{})
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.Node != "" {
		q = q.Where("node = ?", f.Node)
	}
	if f.Cluster != "" {
		q = q.Where("cluster = ?", f.Cluster)
	}
	if len(f.InClusters) > 0 {
		q = q.Where("cluster IN ?", f.InClusters)
	}
	if !f.Since.IsZero() {
		q = q.Where("time_ns >= ?", f.Since.UnixNano())
	}
	if f.UnresolvedOnly {
		q = q.Where("resolved = ?", false)
	}
	var recs []eventRecord
	if err := q.Order("id DESC").Limit(clampLimit(f.Limit, defaultEventLimit, maxEventLimit)).Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return eventsOf(recs), nil
}

// ResolveEvent marks an event resolved by by and returns it. Resolving an
// already resolved event keeps the first resolver and time.
func (s *Store) ResolveEvent(ctx context.Context, id uint64, by string) (*Event, error) {
	db := s.db.WithContext(ctx)
	err := db.Model(&eventRecord{}).Where("id = ? AND resolved = ?", id, false).
		Updates(map[string]any{"resolved": true, "resolved_at_ns": s.now().UnixNano(), "resolved_by": cleanText(by)}).Error
	if err != nil {
		return nil, fmt.Errorf("resolve event %d: %w", id, err)
	}
	var rec eventRecord
	if err := db.Where("id = ?", id).Take(&rec).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("resolve event %d: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("resolve event %d: read it back: %w", id, err)
	}
	e := rec.event()
	return &e, nil
}

// LastEventID returns the highest event ID stored, 0 when there are none.
func (s *Store) LastEventID(ctx context.Context) (uint64, error) {
	var id uint64
	if err := s.db.WithContext(ctx).Model(&eventRecord{}).Select("COALESCE(MAX(id), 0)").Scan(&id).Error; err != nil {
		return 0, fmt.Errorf("read last event id: %w", err)
	}
	return id, nil
}

// PruneEvents deletes events of one type older than before and says how many
// went. Cluster snapshots are only news while fresh; pruning them keeps the
// database small. The audit log is separate and never pruned.
func (s *Store) PruneEvents(ctx context.Context, typ string, before time.Time) (int64, error) {
	if !eventTypes[typ] {
		return 0, fmt.Errorf("prune events: unknown type %q", typ)
	}
	res := s.db.WithContext(ctx).Where("type = ? AND time_ns < ?", typ, before.UnixNano()).Delete(&eventRecord{})
	if res.Error != nil {
		return 0, fmt.Errorf("prune %s events: %w", typ, res.Error)
	}
	return res.RowsAffected, nil
}
