package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// An audit log is founded once. The Open that creates the audit tables writes
// its genesis record (a random installation id and the time, under the audit
// key), an empty head, and beside the database file the anchor file
// <path>.anchor naming the same installation. Nothing founds it again: a log
// whose head or genesis is gone was wiped, and stays reported as wiped.
//
// The anchor file also holds a checkpoint: the id and hash of the newest audit
// row at some moment, under the audit key. The checkpoint only moves forward,
// after CheckpointRows new rows, CheckpointEvery after new rows, and at Close,
// and each advance is published as a system event on the feed. A database
// shorter than its checkpoint, or whose checkpointed row changed, was rolled
// back. What the anchor cannot show: a rollback to a point after the newest
// checkpoint, or the database and its anchor file removed together (which is
// also how one starts over on purpose).

// auditGenesisRecord is the single row (ID 1) saying when and as which
// installation this audit log was founded.
type auditGenesisRecord struct {
	ID           uint64 `gorm:"primaryKey;autoIncrement:false"`
	Installation string `gorm:"not null"`
	CreatedNS    int64  `gorm:"not null"`
	MAC          string `gorm:"column:mac;not null"`
}

func (auditGenesisRecord) TableName() string { return "audit_genesis" }

const auditGenesisRowID = 1

func (s *Store) genesisMAC(g auditGenesisRecord) string {
	return s.mac("jarvis-audit-genesis-v1", g.Installation, strconv.FormatInt(g.CreatedNS, 10))
}

// readGenesis returns the genesis record and whether there is one.
func readGenesis(db *gorm.DB) (auditGenesisRecord, bool, error) {
	var g auditGenesisRecord
	if err := db.Where("id = ?", auditGenesisRowID).Take(&g).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return g, false, nil
		}
		return g, false, fmt.Errorf("read audit genesis: %w", err)
	}
	return g, true, nil
}

// Defaults for Options.CheckpointRows and CheckpointEvery.
const (
	defaultCheckpointRows  = 32
	defaultCheckpointEvery = 30 * time.Second
)

const anchorFormat = "jarvis-audit-anchor-v1"

// anchorFile is the anchor file's JSON. Times are RFC 3339 strings in UTC,
// MAC'd as written.
type anchorFile struct {
	Format       string           `json:"format"`
	Installation string           `json:"installation"`
	Created      string           `json:"created"`
	Checkpoint   anchorCheckpoint `json:"checkpoint"`
	MAC          string           `json:"mac"`
}

type anchorCheckpoint struct {
	Row  uint64 `json:"row"`
	Hash string `json:"hash"`
	Time string `json:"time"`
}

func (s *Store) anchorMAC(a anchorFile) string {
	return s.mac(a.Format, a.Installation, a.Created,
		strconv.FormatUint(a.Checkpoint.Row, 10), a.Checkpoint.Hash, a.Checkpoint.Time)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// sealAnchor builds the anchor file for genesis g checkpointed at row/hash.
func (s *Store) sealAnchor(g auditGenesisRecord, row uint64, hash string, at time.Time) anchorFile {
	a := anchorFile{Format: anchorFormat, Installation: g.Installation, Created: formatTime(fromNS(g.CreatedNS)),
		Checkpoint: anchorCheckpoint{Row: row, Hash: hash, Time: formatTime(at)}}
	a.MAC = s.anchorMAC(a)
	return a
}

// anchorMismatch says, in a sentence, why anchor a does not belong to the
// audit log founded by g; "" when it does.
func anchorMismatch(path string, a anchorFile, g auditGenesisRecord) string {
	if a.Installation == g.Installation && a.Created == formatTime(fromNS(g.CreatedNS)) {
		return ""
	}
	return fmt.Sprintf("The database's audit log is installation %s, founded %s, but the anchor file %s belongs to installation %s, founded %s: the database was replaced or its audit log founded again.",
		g.Installation, formatTime(fromNS(g.CreatedNS)), path, a.Installation, a.Created)
}

// describe names what an anchor file records, for messages.
func (a anchorFile) describe() string {
	return fmt.Sprintf("installation %s, founded %s, checkpoint at row %d of %s", a.Installation, a.Created, a.Checkpoint.Row, a.Checkpoint.Time)
}

// errAnchorInvalid marks an anchor file that is not one.
var errAnchorInvalid = errors.New("not a valid anchor file")

// maxAnchorSize bounds what readAnchor reads; a real one is a few hundred bytes.
const maxAnchorSize = 64 << 10

// readAnchor reads and parses the anchor file (MAC not checked). A missing
// file gives an error matching os.ErrNotExist, a malformed one errAnchorInvalid.
func readAnchor(path string) (anchorFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return anchorFile{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAnchorSize+1))
	if err != nil {
		return anchorFile{}, err
	}
	var a anchorFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	switch err := dec.Decode(&a); {
	case len(b) > maxAnchorSize:
		return anchorFile{}, fmt.Errorf("%w: larger than %d bytes", errAnchorInvalid, maxAnchorSize)
	case err != nil:
		return anchorFile{}, fmt.Errorf("%w: %v", errAnchorInvalid, err)
	case a.Format != anchorFormat || a.Installation == "" || a.MAC == "":
		return anchorFile{}, fmt.Errorf("%w: format %q", errAnchorInvalid, a.Format)
	}
	return a, nil
}

// writeAnchor replaces the anchor file atomically: a private temporary file
// beside it, synced, renamed over it, and the directory synced.
func writeAnchor(path string, a anchorFile) (err error) {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func newInstallationID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make an installation id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// foundAuditLog writes the genesis record (and for a fresh database the empty
// head) and the anchor file, inside migrate's transaction. fresh means this
// Open created the audit tables; otherwise the log predates genesis records
// and is founded on its current head, if it has one. It reports whether it
// wrote the anchor file.
func (s *Store) foundAuditLog(tx *gorm.DB, fresh bool) (bool, error) {
	if err := s.refuseBesideAnchor(); err != nil {
		if !fresh && errors.As(err, new(besideAnchorError)) {
			return false, nil // never found a log again beside someone's anchor: Verify reports it
		}
		return false, err
	}
	tipID, tipHash := uint64(0), ""
	if !fresh {
		var head auditHeadRecord
		if err := tx.Where("id = ?", auditHeadRowID).Take(&head).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return false, nil // an emptied log is not founded again
			}
			return false, fmt.Errorf("read audit head: %w", err)
		}
		tipID, tipHash = head.LastID, head.Hash
	}
	inst, err := newInstallationID()
	if err != nil {
		return false, err
	}
	now := s.now()
	g := auditGenesisRecord{ID: auditGenesisRowID, Installation: inst, CreatedNS: now.UnixNano()}
	g.MAC = s.genesisMAC(g)
	if err := tx.Create(&g).Error; err != nil {
		return false, fmt.Errorf("write audit genesis: %w", err)
	}
	if fresh {
		head := auditHeadRecord{ID: auditHeadRowID, LastID: 0, Hash: "", MAC: s.headMAC(0, "")}
		if err := tx.Create(&head).Error; err != nil {
			return false, fmt.Errorf("write audit head: %w", err)
		}
	}
	if s.cp == nil {
		return false, nil
	}
	if err := writeAnchor(s.cp.path, s.sealAnchor(g, tipID, tipHash, now)); err != nil {
		return false, fmt.Errorf("write the audit anchor file %s: %w", s.cp.path, err)
	}
	s.cp.noteAnchored(tipID)
	return true, nil
}

// ErrAnchorMissing is Open's refusal with Options.RequireAnchor of an audit
// log whose anchor file is missing.
var ErrAnchorMissing = errors.New("the audit anchor file is missing")

// anchorRequired is Open's check for Options.RequireAnchor, after migrate:
// an Open that founded the log has written the anchor by then, so a missing
// one means the log was founded elsewhere or the file was deleted.
func (s *Store) anchorRequired(opts Options) error {
	if !opts.RequireAnchor || s.cp == nil {
		return nil
	}
	_, err := os.Stat(s.cp.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrAnchorMissing, s.cp.path)
	case err != nil:
		return fmt.Errorf("the audit anchor file: %w", err)
	}
	return nil
}

// besideAnchorError is refuseBesideAnchor's refusal.
type besideAnchorError struct{ msg string }

func (e besideAnchorError) Error() string { return e.msg }

// refuseBesideAnchor refuses to found an audit log where an anchor file
// (sound or not) says one was founded before.
func (s *Store) refuseBesideAnchor() error {
	if s.cp == nil {
		return nil
	}
	a, err := readAnchor(s.cp.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil && !errors.Is(err, errAnchorInvalid):
		return fmt.Errorf("read the audit anchor file: %w", err)
	}
	what := "records one"
	if err == nil {
		what = "records one (" + a.describe() + ")"
	}
	return besideAnchorError{fmt.Sprintf("the database has no audit log, but the anchor file %s %s: the database was deleted, emptied or replaced. "+
		"Restore the database that belongs to this anchor file; to start over on purpose, move both the database and %s away",
		s.cp.path, what, s.cp.path)}
}

// checkpointer keeps the anchor file's checkpoint following the audit head.
type checkpointer struct {
	path     string
	rows     uint64
	every    time.Duration
	anchored atomic.Uint64 // highest checkpoint row seen by this process
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	problem string // the last failure reported on the feed
}

// AnchorPath is where Open keeps the audit anchor file of the database at
// dbPath unless Options.AnchorPath says otherwise.
func AnchorPath(dbPath string) string { return dbPath + ".anchor" }

func newCheckpointer(dbPath string, opts Options) *checkpointer {
	cp := &checkpointer{path: opts.AnchorPath, rows: uint64(opts.CheckpointRows), every: opts.CheckpointEvery,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if cp.path == "" {
		cp.path = AnchorPath(dbPath)
	}
	if opts.CheckpointRows <= 0 {
		cp.rows = defaultCheckpointRows
	}
	if cp.every <= 0 {
		cp.every = defaultCheckpointEvery
	}
	if a, err := readAnchor(cp.path); err == nil {
		cp.noteAnchored(a.Checkpoint.Row)
	}
	return cp
}

func (cp *checkpointer) noteAnchored(row uint64) {
	for {
		old := cp.anchored.Load()
		if row <= old || cp.anchored.CompareAndSwap(old, row) {
			return
		}
	}
}

// appended tells the checkpointer the audit head reached lastID.
func (s *Store) appended(lastID uint64) {
	cp := s.cp
	if cp == nil || lastID < cp.anchored.Load()+cp.rows {
		return
	}
	select {
	case cp.kick <- struct{}{}:
	default:
	}
}

func (s *Store) startCheckpoints() {
	if s.cp != nil {
		go s.checkpointLoop()
	}
}

// stopCheckpoints ends the loop and writes a last checkpoint. Safe to call
// more than once.
func (s *Store) stopCheckpoints() {
	if s.cp == nil {
		return
	}
	s.cp.stopOnce.Do(func() {
		close(s.cp.stop)
		<-s.cp.done
		s.checkpointIfBehind(context.Background())
	})
}

func (s *Store) checkpointLoop() {
	cp := s.cp
	defer close(cp.done)
	t := time.NewTicker(cp.every)
	defer t.Stop()
	for {
		select {
		case <-cp.stop:
			return
		case <-cp.kick:
		case <-t.C:
		}
		s.checkpointIfBehind(context.Background())
	}
}

// checkpointIfBehind checkpoints when the head is past what this process
// knows was anchored, and reports a failure on the feed once.
func (s *Store) checkpointIfBehind(ctx context.Context) {
	var head auditHeadRecord
	err := s.db.WithContext(ctx).Where("id = ?", auditHeadRowID).Take(&head).Error
	if err == nil && head.LastID <= s.cp.anchored.Load() {
		return // most ticks: nothing new
	}
	err = s.checkpoint(ctx)
	cp := s.cp
	cp.mu.Lock()
	repeat := err != nil && err.Error() == cp.problem
	if err == nil {
		cp.problem = ""
	} else {
		cp.problem = err.Error()
	}
	cp.mu.Unlock()
	if err == nil || repeat {
		return
	}
	severity := SeverityWarning
	var t tamperError
	if errors.As(err, &t) {
		severity = SeverityCritical
	}
	_ = s.Publish(ctx, &Event{Type: EventSystem, Severity: severity, Source: "audit",
		Summary: "Audit checkpoint not written: " + err.Error()})
}

// tamperError is a checkpoint refused because the log or its anchor was
// tampered with.
type tamperError struct{ msg string }

func (e tamperError) Error() string { return e.msg }

func tampered(format string, args ...any) error { return tamperError{fmt.Sprintf(format, args...)} }

// checkpoint moves the anchor file's checkpoint up to the audit head, after
// checking that the anchor belongs to this log and that the row it last
// vouched for is still there unchanged (so a rolled-back log is never
// anchored over), and publishes the new checkpoint on the feed.
//
// The checkpoints of every process sharing the database take turns on a lock
// file beside the anchor (anchor_lock.go), and each reads the anchor before
// the log: a head read after the anchor is never behind it unless the log was
// rolled back, and the file never moves backwards. The log is read under
// the audit lock, but the anchor is written (two fsyncs) after it is
// released, so tool calls keep appending meanwhile: holding the audit lock
// through the fsyncs cost every call a seventh of its time (BENCHMARKS.md).
func (s *Store) checkpoint(ctx context.Context) error {
	path := s.cp.path
	unlock, err := lockAnchor(path)
	if err != nil {
		return fmt.Errorf("lock the anchor file: %w", err)
	}
	defer unlock()
	a, err := readAnchor(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return tampered("the anchor file %s is missing (run jarvis audit verify)", path)
	case errors.Is(err, errAnchorInvalid):
		return tampered("the anchor file %s is %v (run jarvis audit verify)", path, err)
	case err != nil:
		return fmt.Errorf("read the anchor file: %w", err)
	case !macEqual(s.anchorMAC(a), a.MAC):
		return tampered("the anchor file %s was changed without the audit key (run jarvis audit verify)", path)
	}
	var next *anchorFile
	err = s.auditTx(ctx, func(tx *gorm.DB) error {
		next = nil
		g, ok, err := readGenesis(tx)
		if err != nil {
			return err
		}
		if !ok {
			return tampered("the audit genesis record is missing (run jarvis audit verify)")
		}
		var head auditHeadRecord
		if err := tx.Where("id = ?", auditHeadRowID).Take(&head).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return tampered("the audit head record is missing (run jarvis audit verify)")
			}
			return fmt.Errorf("read audit head: %w", err)
		}
		if !macEqual(s.headMAC(head.LastID, head.Hash), head.MAC) {
			return tampered("the audit head record was changed without the audit key (run jarvis audit verify)")
		}
		if anchorMismatch(path, a, g) != "" {
			return tampered("the anchor file %s belongs to another audit log (run jarvis audit verify)", path)
		}
		s.cp.noteAnchored(a.Checkpoint.Row)
		if a.Checkpoint.Row > 0 {
			var at auditRecord
			if err := tx.Select("id", "hash").Where("id = ?", a.Checkpoint.Row).Take(&at).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return tampered("row %d, which the last checkpoint vouches for, is gone: the log was cut back (run jarvis audit verify)", a.Checkpoint.Row)
				}
				return fmt.Errorf("read audit row %d: %w", a.Checkpoint.Row, err)
			}
			if at.Hash != a.Checkpoint.Hash {
				return tampered("row %d is not the row the last checkpoint vouches for: the log was rolled back and rewritten (run jarvis audit verify)", a.Checkpoint.Row)
			}
		}
		if head.LastID < a.Checkpoint.Row {
			return tampered("the audit head names row %d, behind the last checkpoint at row %d: it was rolled back (run jarvis audit verify)", head.LastID, a.Checkpoint.Row)
		}
		if head.LastID == a.Checkpoint.Row {
			return nil
		}
		sealed := s.sealAnchor(g, head.LastID, head.Hash, time.Now())
		next = &sealed
		return nil
	})
	if err == nil && next != nil {
		if werr := writeAnchor(path, *next); werr != nil {
			err = fmt.Errorf("write the anchor file %s: %w", path, werr)
		}
	}
	wrote := next
	if err != nil {
		return err
	}
	if wrote == nil {
		return nil
	}
	s.cp.noteAnchored(wrote.Checkpoint.Row)
	details := EncodeDetails(SystemDetails{Installation: wrote.Installation, Row: wrote.Checkpoint.Row,
		Hash: wrote.Checkpoint.Hash, Time: wrote.Checkpoint.Time, MAC: wrote.MAC})
	return s.Publish(context.WithoutCancel(ctx), &Event{Type: EventSystem, Severity: SeverityInfo, Source: "audit",
		Summary: fmt.Sprintf("Audit checkpoint: rows 1 to %d anchored in %s", wrote.Checkpoint.Row, filepath.Base(path)),
		Details: details})
}
