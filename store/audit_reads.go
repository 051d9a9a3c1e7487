package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Reads are committed in groups. Under load, many calls end at once; each
// taking the audit lock and SQLite's write lock for a transaction of its own
// made them queue behind one another (a lock convoy: 2 cores, 50 callers, and
// the holder often waiting for a CPU), which halved the calls per second
// over HTTP. One writer goroutine takes every read that is waiting, commits
// them in one transaction, and only then answers each caller: a row a client
// was answered on is committed, and Close commits every row queued before it.
// Alone, a read costs one channel hand-off more than before (BENCHMARKS.md).
//
// Changing calls keep their own transactions (AuditBegin/AuditEnd): their begin
// row must be committed before they run, one at a time.

// maxReadBatch bounds one group transaction.
const maxReadBatch = 128

// readRequest is one read row waiting to be committed, with its event.
type readRequest struct {
	ctx   context.Context // the caller's; a read it stopped waiting for is not written
	rec   auditRecord
	ev    *Event
	evRec eventRecord
	done  chan error
}

// readWriter is the group-commit writer of one Store.
type readWriter struct {
	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	queue  chan *readRequest
	done   chan struct{}
}

func (s *Store) startReads() {
	s.reads = &readWriter{queue: make(chan *readRequest, maxReadBatch), done: make(chan struct{})}
	go s.readLoop()
}

// commit queues r and waits until it is committed or failed. If ctx ends
// first, the caller hears so, and the row may still be written: the read did
// happen.
func (w *readWriter) commit(ctx context.Context, r *readRequest) error {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errors.New("the store is closed")
	}
	select {
	case w.queue <- r:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("not known to be recorded: %w", ctx.Err())
	}
}

// stop commits what is queued and ends the writer. Safe to call more than once.
func (w *readWriter) stop() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

func (s *Store) readLoop() {
	w := s.reads
	defer close(w.done)
	for first := range w.queue {
		batch := []*readRequest{first}
	more:
		for len(batch) < maxReadBatch {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commitReads(batch)
	}
}

// commitReads writes a group of read rows and their events in one
// transaction (or, if that fails, one by one), answers each caller, then
// delivers the events in ID order.
func (s *Store) commitReads(batch []*readRequest) {
	// A caller that gave up waiting was told its read is not known to be
	// recorded, and withheld the answer: its row is not written now as "ok".
	// (One that gives up while the transaction runs is told the same; its row
	// may then exist, and says truly that the read ran.)
	waiting := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		waiting = append(waiting, r)
	}
	if batch = waiting; len(batch) == 0 {
		return
	}
	// No caller's context: a caller that gave up must not fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, len(batch))
	err := s.writeReads(ctx, batch)
	for i := range errs {
		errs[i] = err
	}
	if err != nil && len(batch) > 1 && retryRowByRow(ctx, err) {
		// One row the database refuses fails the transaction of them all:
		// write each on its own, so only that row's caller hears of it.
		for i, r := range batch {
			errs[i] = s.writeReads(ctx, []*readRequest{r})
		}
	}
	var committed []*readRequest
	for i, r := range batch {
		if errs[i] == nil {
			committed = append(committed, r)
			if r.ev != nil {
				*r.ev = r.evRec.event()
			}
		}
	}
	if len(committed) > 0 {
		s.appended(committed[len(committed)-1].rec.ID)
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	for _, r := range committed {
		if r.ev != nil {
			s.deliverLocked(ctx, r.ev)
		}
	}
}

// retryRowByRow says whether a batch that failed with err is worth writing
// again row by row: not when waiting was what failed (the audit lock's
// timeout, the batch's deadline), as every row would wait again.
func retryRowByRow(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, ErrLockTimeout) && !errors.Is(err, context.DeadlineExceeded)
}

// writeReads commits the rows of batch and their events in one transaction;
// on success their ids are set.
func (s *Store) writeReads(ctx context.Context, batch []*readRequest) error {
	recs := make([]*auditRecord, len(batch))
	for i, r := range batch {
		recs[i] = &r.rec
	}
	return s.auditTx(ctx, func(tx *gorm.DB) error {
		if err := s.appendAuditRows(tx, recs); err != nil {
			return err
		}
		if !slices.ContainsFunc(batch, func(r *readRequest) bool { return r.ev != nil }) {
			return nil
		}
		// The events' ids must commit in id order too (insertEvent).
		if err := s.d.lock(tx, lockEvents); err != nil {
			return err
		}
		insert := tx.Statement.ConnPool.(*sql.Tx).StmtContext(ctx, s.stmts.insertEvent) // appendAuditRows checked it
		for _, r := range batch {
			if r.ev == nil {
				continue
			}
			if err := insert.QueryRowContext(ctx, r.evRec.insertArgs()...).Scan(&r.evRec.ID); err != nil {
				return fmt.Errorf("store the event of audit row %d: %w", r.rec.ID, err)
			}
		}
		return nil
	})
}
