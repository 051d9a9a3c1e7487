package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"gorm.io/gorm"
)

// VerifyReport is the result of AuditVerify. When OK is false, FirstBadID is
// the first row found broken — for missing rows, the first missing id — and
// Problem says what is wrong in a sentence. FirstBadID is 0 when the problem
// is with the genesis, head or anchor record rather than a row.
type VerifyReport struct {
	Rows       int
	OK         bool
	FirstBadID uint64
	Problem    string

	// Installation and Since identify the audit log (its genesis record).
	Installation string
	Since        time.Time
	// Anchor is the anchor file checked ("" for an in-memory database);
	// Checkpoint is the row its checkpoint vouches for, written at CheckpointAt.
	Anchor       string
	Checkpoint   uint64
	CheckpointAt time.Time
}

// verifyBatch is how many rows Verify reads per query.
const verifyBatch = 500

// AuditVerify checks that the audit log is the one founded for this
// database and is whole. The genesis record must be there and sealed with the
// audit key, and the anchor file beside the database must be there, sealed,
// and name the same installation. Then it walks the whole log in id order and
// checks that ids run on from 1 without gaps, each row links to the one
// before, each row's hash matches its contents, each MAC was made with the
// audit key, and the head record (MAC'd too) names a row that is present with
// the same hash, and each row's cluster column says what its hashed arguments
// (or its begin row's) say. Last, the log must reach the anchor's checkpoint
// and hold the row it vouches for unchanged. It stops at the first problem. A returned
// error means the check could not run, not that the log is bad.
func (s *Store) AuditVerify(ctx context.Context) (VerifyReport, error) {
	db := s.db.WithContext(ctx)
	rep := VerifyReport{}
	bad := func(id uint64, format string, args ...any) (VerifyReport, error) {
		rep.FirstBadID = id
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}

	// Read the anchor, then the genesis and head, then the rows: each was
	// written no later than what is read after it, so appends and checkpoints
	// made meanwhile only add to the end.
	var anchor *anchorFile
	anchorProblem := ""
	if s.cp != nil {
		rep.Anchor = s.cp.path
		a, err := readAnchor(s.cp.path)
		switch {
		case err == nil:
			anchor = &a
		case errors.Is(err, os.ErrNotExist):
			anchorProblem = fmt.Sprintf("The anchor file %s is missing, so a wiped, replaced or rolled-back log cannot be ruled out: the log cannot be trusted until the anchor file that belongs to this database is put back.", s.cp.path)
		case errors.Is(err, errAnchorInvalid):
			anchorProblem = fmt.Sprintf("The anchor file %s is %v: it was damaged or replaced, so a wiped or rolled-back log cannot be ruled out.", s.cp.path, err)
		default:
			return VerifyReport{}, fmt.Errorf("verify audit log: read the anchor file: %w", err)
		}
	}
	g, hasGenesis, err := readGenesis(db)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify audit log: %w", err)
	}
	var head auditHeadRecord
	hasHead := true
	if err := db.Where("id = ?", auditHeadRowID).Take(&head).Error; err != nil {
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return VerifyReport{}, fmt.Errorf("verify audit log: read head: %w", err)
		}
		hasHead = false
	}

	anchorSealed := anchor != nil && macEqual(s.anchorMAC(*anchor), anchor.MAC)
	switch {
	case !hasGenesis:
		msg := "The audit genesis record is missing: the log was wiped or replaced."
		if anchorSealed {
			msg += fmt.Sprintf(" The anchor file %s records %s.", s.cp.path, anchor.describe())
		}
		return bad(0, "%s", msg)
	case !macEqual(s.genesisMAC(g), g.MAC):
		if errors.Is(s.checkAuditKey(db), ErrAuditKeyChanged) {
			return bad(0, "%s.", ErrAuditKeyChanged.Error())
		}
		return bad(0, "The audit genesis record was not sealed with this server's audit key while the head record is: the genesis record was forged.")
	}
	rep.Installation, rep.Since = g.Installation, fromNS(g.CreatedNS)
	switch {
	case anchorProblem != "":
		return bad(0, "%s", anchorProblem)
	case anchor != nil && !anchorSealed:
		return bad(0, "The anchor file %s was changed without the audit key (or the key changed), so it vouches for nothing.", s.cp.path)
	case anchor != nil && anchorMismatch(s.cp.path, *anchor, g) != "":
		return bad(0, "%s", anchorMismatch(s.cp.path, *anchor, g))
	}
	var cp anchorCheckpoint
	if anchor != nil {
		cp = anchor.Checkpoint
		rep.Checkpoint = cp.Row
		rep.CheckpointAt, _ = time.Parse(time.RFC3339Nano, cp.Time)
	}

	var prev *auditRecord
	begins := beginClusters{}
	headRowHash, headRowSeen := "", false
	cpRowHash, cpRowSeen := "", false
	for {
		after := uint64(0)
		if prev != nil {
			after = prev.ID
		}
		var batch []auditRecord
		if err := db.Where("id > ?", after).Order("id ASC").Limit(verifyBatch).Find(&batch).Error; err != nil {
			return VerifyReport{}, fmt.Errorf("verify audit log: read rows after %d: %w", after, err)
		}
		for i := range batch {
			r := batch[i]
			switch {
			case prev == nil && r.ID != 1:
				return bad(1, "%s: the log starts at row %d.", missing(1, r.ID-1), r.ID)
			case prev == nil && r.PrevHash != "":
				return bad(r.ID, "Row %d is the first row but links to an earlier row.", r.ID)
			case prev != nil && r.ID != prev.ID+1:
				return bad(prev.ID+1, "%s: row %d follows row %d.", missing(prev.ID+1, r.ID-1), r.ID, prev.ID)
			case prev != nil && r.PrevHash != prev.Hash:
				return bad(r.ID, "Row %d does not link to row %d: rows were removed, reordered or replaced.", r.ID, prev.ID)
			case rowHash(r) != r.Hash:
				return bad(r.ID, "Row %d was changed after it was written: its contents do not match its hash.", r.ID)
			case !macEqual(s.rowMAC(r.Hash), r.MAC):
				return bad(r.ID, "Row %d was not sealed with this server's audit key: it is forged, or the key changed.", r.ID)
			}
			if want := begins.of(r); r.Cluster != want {
				return bad(r.ID, "Row %d says cluster %q where its call names %q: its cluster column was changed after it was written.", r.ID, r.Cluster, want)
			}
			if hasHead && r.ID == head.LastID {
				headRowHash, headRowSeen = r.Hash, true
			}
			if r.ID == cp.Row {
				cpRowHash, cpRowSeen = r.Hash, true
			}
			rep.Rows++
			prev = &batch[i]
		}
		if len(batch) < verifyBatch {
			break
		}
	}
	lastID := uint64(0)
	if prev != nil {
		lastID = prev.ID
	}

	switch {
	case !hasHead && prev == nil:
		if cp.Row > 0 {
			return bad(1, "The audit log was wiped: its rows and head record are gone, though the anchor file's checkpoint of %s records %d rows (installation %s, founded %s).",
				cp.Time, cp.Row, g.Installation, formatTime(rep.Since))
		}
		return bad(0, "The audit log was wiped: its head record is gone and it has no rows, though it was founded %s (installation %s).",
			formatTime(rep.Since), g.Installation)
	case !hasHead:
		return bad(0, "The audit head record is missing, so rows deleted from the end cannot be ruled out.")
	case !macEqual(s.headMAC(head.LastID, head.Hash), head.MAC):
		return bad(0, "The audit head record was changed without the audit key.")
	case head.LastID == 0 && prev == nil:
		// The sealed empty head of a log nothing was written to yet.
	case !headRowSeen && lastID < head.LastID:
		return bad(lastID+1, "%s from the end of the log: the head records row %d as written.", missing(lastID+1, head.LastID), head.LastID)
	case headRowHash != head.Hash:
		return bad(head.LastID, "Row %d does not match the hash the audit head recorded for it.", head.LastID)
	}

	switch {
	case cp.Row == 0:
	case lastID < cp.Row:
		return bad(lastID+1, "%s from the end of the log: the anchor file's checkpoint of %s records row %d as written, so the log was cut back and its head rolled back.",
			missing(lastID+1, cp.Row), cp.Time, cp.Row)
	case !cpRowSeen || cpRowHash != cp.Hash:
		return bad(cp.Row, "Row %d is not the row the anchor file's checkpoint of %s vouches for: the log was rolled back and written again from row %d or earlier.",
			cp.Row, cp.Time, cp.Row)
	}
	rep.OK = true
	return rep, nil
}

// beginClusters follows the clusters of begin rows not yet ended, those that
// name one: few at any point of the walk, however long the log.
type beginClusters map[uint64]string

// of is the cluster column row r must have.
func (b beginClusters) of(r auditRecord) string {
	switch r.Kind {
	case "end":
		c := b[r.BeginID]
		delete(b, r.BeginID)
		return c
	case "begin":
		c := clusterOfArgs(r.Args)
		if c != "" {
			b[r.ID] = c
		}
		return c
	case "read":
		return clusterOfArgs(r.Args)
	}
	return ""
}

// missing describes the id range first..last as missing rows.
func missing(first, last uint64) string {
	if first == last {
		return fmt.Sprintf("Row %d is missing", first)
	}
	return fmt.Sprintf("Rows %d to %d are missing", first, last)
}
