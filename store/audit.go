package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// The audit log is append-only. Each row carries the hash of the row before
// it (PrevHash), its own hash over a canonical encoding of all its fields
// (Hash), and an HMAC of that hash under the server's audit key (MAC). A
// single audit_head row, updated in the same transaction as every append,
// records the newest row's id and hash under its own MAC, so deleting rows
// from the end is detected too. The log is founded once, with a genesis
// record and an anchor file outside the database whose checkpoints follow
// the head (anchor.go), so a wiped log or a head rolled back behind a
// checkpoint is detected as well.
//
// What Verify cannot see: someone holding the audit key can rewrite
// everything; someone who saved an old head row can truncate back to it as
// long as no checkpoint past it was written (at most CheckpointRows rows or
// CheckpointEvery back); the database and its anchor file removed together
// look like a new installation.

// AuditEntry describes a tool call about to run.
type AuditEntry struct {
	Principal, Tool string
	Args            string // redacted canonical JSON; the row's cluster is the one it names
	Tier, Decision  string
	Plan            string
	ApprovalID      string
}

// How a tool call ended (AuditOutcome.Status). Three outcomes of a call that
// ran are never conflated: ok, failed, and unknown (a write that may or may not
// have happened).
const (
	OutcomeOK          = "ok"
	OutcomeFailed      = "failed"
	OutcomeUnknown     = "unknown"
	OutcomeRefused     = "refused"     // the call did not run
	OutcomeInterrupted = "interrupted" // Jarvis stopped before the call ended
)

// AuditOutcome describes how a tool call ended.
type AuditOutcome struct {
	Status   string // one of the Outcome constants
	Error    string
	UPID     string
	Duration time.Duration
	Result   string // short summary; truncated to 1 KiB
}

// AuditRow is one stored audit row.
type AuditRow struct {
	ID         uint64    `json:"id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`               // begin|end, or read: a GREEN read in one row
	BeginID    uint64    `json:"begin_id,omitempty"` // end rows: the begin row they close
	Principal  string    `json:"principal"`
	Tool       string    `json:"tool"`
	Cluster    string    `json:"cluster,omitempty"` // what Args names (an end row: its begin row's); not hashed, Args is
	Args       string    `json:"args"`
	Tier       string    `json:"tier"`
	Decision   string    `json:"decision"`
	Plan       string    `json:"plan,omitempty"`
	ApprovalID string    `json:"approval_id,omitempty"`
	Status     string    `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	UPID       string    `json:"upid,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	Result     string    `json:"result,omitempty"`
	PrevHash   string    `json:"prev_hash"`
	Hash       string    `json:"hash"`
	MAC        string    `json:"mac"`
}

// Caps on free-text outcome fields so one call cannot bloat the log.
const (
	maxAuditResult = 1 << 10
	maxAuditError  = 4 << 10
)

// "error" is what rows written before the three outcomes said for "failed".
var auditStatuses = map[string]bool{OutcomeOK: true, OutcomeFailed: true, "error": true, OutcomeRefused: true, OutcomeInterrupted: true, OutcomeUnknown: true}

// auditRecord is the audit_log table. IDs are assigned by the append code
// (tip + 1), not by SQLite, so a deleted row leaves a visible gap.
type auditRecord struct {
	ID         uint64 `gorm:"primaryKey;autoIncrement:false"`
	TimeNS     int64  `gorm:"not null"`
	Kind       string `gorm:"not null"`
	BeginID    uint64 `gorm:"not null;default:0;index"`
	Principal  string `gorm:"not null;default:''"`
	Tool       string `gorm:"not null;default:''"`
	Args       string `gorm:"type:text;not null;default:''"`
	Tier       string `gorm:"not null;default:''"`
	Decision   string `gorm:"not null;default:''"`
	Plan       string `gorm:"type:text;not null;default:''"`
	ApprovalID string `gorm:"not null;default:''"`
	Status     string `gorm:"not null;default:''"`
	Error      string `gorm:"type:text;not null;default:''"`
	UPID       string `gorm:"column:upid;not null;default:''"`
	DurationMS int64  `gorm:"not null;default:0"`
	Result     string `gorm:"type:text;not null;default:''"`
	PrevHash   string `gorm:"not null;default:''"`
	Hash       string `gorm:"not null"`
	MAC        string `gorm:"column:mac;not null"`
	// Cluster is derived from Args (begin and read rows) or the begin row
	// (end rows), for searches; outside the hash (rowHash), checked by
	// AuditVerify.
	Cluster string `gorm:"not null;default:'';index"`
}

func (auditRecord) TableName() string { return "audit_log" }

func (r auditRecord) row() AuditRow {
	return AuditRow{
		ID: r.ID, Time: fromNS(r.TimeNS), Kind: r.Kind, BeginID: r.BeginID,
		Principal: r.Principal, Tool: r.Tool, Cluster: r.Cluster, Args: r.Args, Tier: r.Tier,
		Decision: r.Decision, Plan: r.Plan, ApprovalID: r.ApprovalID,
		Status: r.Status, Error: r.Error, UPID: r.UPID, DurationMS: r.DurationMS,
		Result: r.Result, PrevHash: r.PrevHash, Hash: r.Hash, MAC: r.MAC,
	}
}

// auditHeadRecord is the single row (ID 1) naming the newest audit row.
type auditHeadRecord struct {
	ID     uint64 `gorm:"primaryKey;autoIncrement:false"`
	LastID uint64 `gorm:"not null"`
	Hash   string `gorm:"not null"`
	MAC    string `gorm:"column:mac;not null"`
}

func (auditHeadRecord) TableName() string { return "audit_head" }

const auditHeadRowID = 1

// canonical encodes every field in a fixed order, each as an 8-byte length
// followed by its bytes, so no two different rows encode alike.
func canonical(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += 8 + len(p)
	}
	buf := make([]byte, 0, n)
	for _, p := range parts {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	return buf
}

// rowHash is the hex SHA-256 of the row's canonical encoding (MAC excluded).
func rowHash(r auditRecord) string {
	sum := sha256.Sum256(canonical(
		"jarvis-audit-v1",
		strconv.FormatUint(r.ID, 10),
		fromNS(r.TimeNS).Format(time.RFC3339Nano),
		r.Kind,
		strconv.FormatUint(r.BeginID, 10),
		r.Principal, r.Tool, r.Args, r.Tier, r.Decision, r.Plan, r.ApprovalID,
		r.Status, r.Error, r.UPID,
		strconv.FormatInt(r.DurationMS, 10),
		r.Result,
		r.PrevHash,
	))
	return hex.EncodeToString(sum[:])
}

func (s *Store) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.auditKey)
	m.Write(canonical(parts...))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Store) rowMAC(hash string) string { return s.mac("jarvis-audit-row-v1", hash) }

func (s *Store) headMAC(lastID uint64, hash string) string {
	return s.mac("jarvis-audit-head-v1", strconv.FormatUint(lastID, 10), hash)
}

// macEqual compares two hex MACs in constant time.
func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// AuditBegin writes the begin row of a tool call and returns its ID once it
// is committed. A call whose begin row cannot be written must not run.
func (s *Store) AuditBegin(ctx context.Context, e AuditEntry) (uint64, error) {
	if e.Principal == "" || e.Tool == "" {
		return 0, errors.New("audit begin: principal and tool are required")
	}
	var id uint64
	err := s.auditTx(ctx, func(tx *gorm.DB) error {
		rec := auditRecord{
			Kind: "begin", Principal: e.Principal, Tool: e.Tool, Args: e.Args, Tier: e.Tier,
			Decision: e.Decision, Plan: e.Plan, ApprovalID: e.ApprovalID, Cluster: clusterOfArgs(e.Args),
		}
		if err := s.appendAudit(tx, &rec); err != nil {
			return err
		}
		id = rec.ID
		return s.beginRunning(tx, id)
	})
	if err != nil {
		return 0, fmt.Errorf("audit begin of %s by %s: %w", e.Tool, e.Principal, err)
	}
	s.appended(id)
	return id, nil
}

// AuditRead writes the one row of a read that ran: what a begin and an end row
// would say together (kind "read"). Reads change nothing, so they need no
// row before they run; the caller must not hand the result out unless this
// returns nil, so no answer a client got is missing from the log.
//
// ev, when not nil, is the read's feed event: it is stored in the same
// transaction and then delivered as Publish would, with its ID and time
// written back. Reads arriving together are committed together (group
// commit, audit_reads.go).
func (s *Store) AuditRead(ctx context.Context, e AuditEntry, o AuditOutcome, ev *Event) (uint64, error) {
	if e.Principal == "" || e.Tool == "" {
		return 0, errors.New("audit read: principal and tool are required")
	}
	if !auditStatuses[o.Status] {
		return 0, fmt.Errorf("audit read of %s: unknown status %q", e.Tool, o.Status)
	}
	r, err := s.readRequest(ctx, e, o, ev)
	if err != nil {
		return 0, err
	}
	if err := s.reads.commit(ctx, r); err != nil {
		return 0, fmt.Errorf("audit read of %s by %s: %w", e.Tool, e.Principal, err)
	}
	return r.rec.ID, nil
}

// readRequest makes the row of a read, and its event's, for the writer.
func (s *Store) readRequest(ctx context.Context, e AuditEntry, o AuditOutcome, ev *Event) (*readRequest, error) {
	r := &readRequest{ctx: ctx, rec: auditRecord{
		Kind: "read", Principal: e.Principal, Tool: e.Tool, Args: e.Args, Tier: e.Tier,
		Decision: e.Decision, Plan: e.Plan, ApprovalID: e.ApprovalID, Cluster: clusterOfArgs(e.Args),
		Status: o.Status, Error: outcomeText(o.Error, maxAuditError), UPID: o.UPID,
		DurationMS: o.Duration.Milliseconds(), Result: outcomeText(o.Result, maxAuditResult),
	}, ev: ev, done: make(chan error, 1)}
	if ev != nil {
		var err error
		if r.evRec, err = s.eventRecordOf(ev); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// outcomeText is an outcome's free text as stored: storable (cleanText),
// then cut to max bytes (replacing a byte can lengthen it).
func outcomeText(s string, max int) string { return truncateUTF8(cleanText(s), max) }

// AuditEnd writes the end row closing begin row beginID. It fails with
// ErrNotFound when there is no such begin row and ErrAlreadyEnded when the
// call was already closed (for example marked interrupted).
func (s *Store) AuditEnd(ctx context.Context, beginID uint64, o AuditOutcome) error {
	if !auditStatuses[o.Status] {
		return fmt.Errorf("audit end of call %d: unknown status %q (want ok, error, unknown, refused or interrupted)", beginID, o.Status)
	}
	var last uint64
	err := s.auditTx(ctx, func(tx *gorm.DB) error {
		var begin auditRecord
		if err := tx.Where("id = ? AND kind = ?", beginID, "begin").Take(&begin).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("no begin row: %w", ErrNotFound)
			}
			return fmt.Errorf("read begin row: %w", err)
		}
		var ended int64
		if err := tx.Model(&auditRecord{}).Where("kind = ? AND begin_id = ?", "end", beginID).Count(&ended).Error; err != nil {
			return fmt.Errorf("look for an end row: %w", err)
		}
		if ended > 0 {
			return ErrAlreadyEnded
		}
		rec := endRecord(begin, o)
		if err := s.appendAudit(tx, &rec); err != nil {
			return err
		}
		last = rec.ID
		return s.endRunning(tx, beginID)
	})
	if err != nil {
		return fmt.Errorf("audit end of call %d: %w", beginID, err)
	}
	s.appended(last)
	return nil
}

// endRecord builds the end row for begin. It repeats who/what so an end row
// reads on its own; arguments and plan stay only in the begin row.
func endRecord(begin auditRecord, o AuditOutcome) auditRecord {
	return auditRecord{
		Kind: "end", BeginID: begin.ID,
		Principal: begin.Principal, Tool: begin.Tool, Cluster: begin.Cluster, Tier: begin.Tier,
		Decision: begin.Decision, ApprovalID: begin.ApprovalID,
		Status: o.Status, Error: outcomeText(o.Error, maxAuditError), UPID: o.UPID,
		DurationMS: o.Duration.Milliseconds(), Result: outcomeText(o.Result, maxAuditResult),
	}
}

// auditTx runs fn in one transaction under the audit lock, serialised with
// every other audit append of this process and of every other process.
func (s *Store) auditTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.d.lock(tx, lockAudit); err != nil {
			return err
		}
		return fn(tx)
	})
}

// appendAudit links rec to the chain tip, seals it and inserts it, then moves
// the head. Must run inside auditTx.
func (s *Store) appendAudit(tx *gorm.DB, rec *auditRecord) error {
	return s.appendAuditRows(tx, []*auditRecord{rec})
}

// appendAuditRows appends recs in order: one read of the tip, one insert per
// row, one move of the head. It is on the path of every tool call, so it runs
// statements prepared once (stmts.go) instead of gorm's reflection and a fresh
// prepare each time, which cost more than SQLite's own work (BENCHMARKS.md).
// Must run inside auditTx.
func (s *Store) appendAuditRows(tx *gorm.DB, recs []*auditRecord) error {
	ctx := tx.Statement.Context
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return errors.New("audit append outside a transaction") // a bug, never a user's problem
	}
	tip, err := scanTip(sqlTx.StmtContext(ctx, s.stmts.tip).QueryRowContext(ctx, tipArgs...))
	if err != nil {
		return err
	}
	tipID, tipHash := tip.id, tip.hash
	insert := sqlTx.StmtContext(ctx, s.stmts.insertAudit)
	for _, rec := range recs {
		rec.cleanFields() // what is hashed is what is stored, on either engine
		rec.ID = tipID + 1
		rec.PrevHash = tipHash
		rec.TimeNS = s.rowTime(tip)
		rec.Hash = rowHash(*rec)
		rec.MAC = s.rowMAC(rec.Hash)
		_, err = insert.ExecContext(ctx,
			rec.ID, rec.TimeNS, rec.Kind, rec.BeginID, rec.Principal, rec.Tool, rec.Args, rec.Tier, rec.Decision, rec.Plan,
			rec.ApprovalID, rec.Status, rec.Error, rec.UPID, rec.DurationMS, rec.Result, rec.PrevHash, rec.Hash, rec.MAC, rec.Cluster)
		if err != nil {
			return fmt.Errorf("insert audit row %d: %w", rec.ID, err)
		}
		tipID, tipHash = rec.ID, rec.Hash
	}
	_, err = sqlTx.StmtContext(ctx, s.stmts.moveHead).ExecContext(ctx, auditHeadRowID, tipID, tipHash, s.headMAC(tipID, tipHash))
	if err != nil {
		return fmt.Errorf("move audit head to row %d: %w", tipID, err)
	}
	return nil
}

// AuditWritable reports whether a row could be appended now: the genesis and
// the head are in place. A wiped or damaged log says why (and every call is
// refused until it is restored: no row, no call).
//
// A log sealed under another key cannot take rows either: they could never be
// verified together with the old ones.
func (s *Store) AuditWritable(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if _, err := s.chainTip(db); err != nil {
		return err
	}
	return s.checkAuditKey(db)
}

// ErrAuditKeyChanged means the audit log was sealed with another key than this
// process holds: the server secret it is derived from was changed.
var ErrAuditKeyChanged = errors.New("the audit log was sealed with another key: JWT_SECRET is not the secret this database was created with. " +
	"Set JWT_SECRET (or JWT_SECRET_FILE) back to that secret; the audit key, logins and agent tokens all derive from it. " +
	"Only to start a new audit log on purpose, move the database and its .anchor file aside")

// checkAuditKey tells a changed key from a forged record: with another key no
// sealed record verifies, while a forger without the key can change only some.
func (s *Store) checkAuditKey(db *gorm.DB) error {
	g, ok, err := readGenesis(db)
	if err != nil || !ok {
		return err // chainTip has already named a missing genesis
	}
	if macEqual(s.genesisMAC(g), g.MAC) {
		return nil
	}
	var head auditHeadRecord
	if err := db.Where("id = ?", auditHeadRowID).Take(&head).Error; err == nil && macEqual(s.headMAC(head.LastID, head.Hash), head.MAC) {
		return errors.New("the audit genesis record was altered without the audit key, and nothing is recorded until the database is restored (run jarvis audit verify)")
	}
	return ErrAuditKeyChanged
}

// auditTip is what the next audit row follows: the id and hash of the row
// before it, and the database's clock when the tip was read (NULL where the
// process's clock is used).
type auditTip struct {
	id   uint64
	hash string
	dbNS sql.NullInt64
}

// chainTip returns the tip the next row must follow: the larger of the head
// and the newest row. Following the head after tail rows were deleted leaves
// the gap in place for Verify to report, instead of silently reusing the
// deleted ids. A log without its genesis or head record was wiped or
// damaged: nothing is appended to it (no row, no call), so it is never
// silently started over.
func (s *Store) chainTip(tx *gorm.DB) (auditTip, error) {
	return scanTip(tx.Raw(s.tipQuery(), tipArgs...).Row())
}

// tipQuery reads in one round trip what the tip needs: whether the genesis
// is there, the newest row, the head and the clock.
func (s *Store) tipQuery() string {
	return `SELECT
	(SELECT count(*) FROM audit_genesis WHERE id = ?),
	(SELECT id FROM audit_log ORDER BY id DESC LIMIT 1),
	(SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1),
	(SELECT last_id FROM audit_head WHERE id = ?),
	(SELECT hash FROM audit_head WHERE id = ?),
	` + s.d.nowNS()
}

var tipArgs = []any{auditGenesisRowID, auditHeadRowID, auditHeadRowID}

func scanTip(row *sql.Row) (auditTip, error) {
	var (
		genesis            int64
		lastID, headID     sql.NullInt64
		lastHash, headHash sql.NullString
		tip                auditTip
	)
	if err := row.Scan(&genesis, &lastID, &lastHash, &headID, &headHash, &tip.dbNS); err != nil {
		return tip, fmt.Errorf("read the audit chain's tip: %w", err)
	}
	switch {
	case genesis == 0:
		return tip, errors.New("the audit log has no genesis record: it was wiped or replaced, and nothing is recorded until the database is restored (run jarvis audit verify)")
	case !headID.Valid:
		return tip, errors.New("the audit head record is missing: the log was wiped or damaged, and nothing is recorded until the database is restored (run jarvis audit verify)")
	case !lastID.Valid || uint64(headID.Int64) > uint64(lastID.Int64):
		tip.id, tip.hash = uint64(headID.Int64), headHash.String
	default:
		tip.id, tip.hash = uint64(lastID.Int64), lastHash.String
	}
	return tip, nil
}

// rowTime is the time of a row appended at tip: the database's clock read
// with the tip, under the audit lock, so row times follow row ids across
// hosts; else the process's clock.
func (s *Store) rowTime(tip auditTip) int64 {
	if s.dbClock && tip.dbNS.Valid {
		return tip.dbNS.Int64
	}
	return s.now().UnixNano()
}

// Limits on AuditRecent.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// AuditRecent returns up to limit rows, newest first. limit <= 0 means 100;
// at most 1000.
func (s *Store) AuditRecent(ctx context.Context, limit int) ([]AuditRow, error) {
	var recs []auditRecord
	err := s.db.WithContext(ctx).Order("id DESC").Limit(clampLimit(limit, defaultAuditLimit, maxAuditLimit)).Find(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("read recent audit rows: %w", err)
	}
	out := make([]AuditRow, len(recs))
	for i, r := range recs {
		out[i] = r.row()
	}
	return out, nil
}

// truncateUTF8 cuts s to at most max bytes without splitting a character.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	// A cut character leaves at most three stray bytes at the end.
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
