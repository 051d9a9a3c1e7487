package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// statements are the SQL of every tool call's audit row, event and token check, prepared once on the
// database. database/sql keeps one prepared copy per connection and hands it to
// each transaction on that connection (Tx.StmtContext), so the hot path never
// parses SQL again. (gorm's PrepareStmt cannot do this: a statement it first
// prepares inside a transaction belongs to that transaction, and is prepared
// again in every other.)
type statements struct {
	tip, insertAudit, moveHead, insertEvent *sql.Stmt
	getToken                                *sql.Stmt
}

func (s *Store) prepare() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	for _, st := range []struct {
		to  **sql.Stmt
		sql string
	}{
		{&s.stmts.tip, s.tipQuery()},
		{&s.stmts.insertAudit, `INSERT INTO audit_log (id, time_ns, kind, begin_id, principal, tool, args, tier, decision, plan,
			approval_id, status, error, upid, duration_ms, result, prev_hash, hash, mac, cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`},
		{&s.stmts.moveHead, `INSERT INTO audit_head (id, last_id, hash, mac) VALUES (?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash, mac = excluded.mac`},
		{&s.stmts.insertEvent, insertEventSQL},
		{&s.stmts.getToken, `SELECT id, name, max_tier, toolsets, created_ns, expires_ns, revoked_ns, token_hash FROM agent_tokens WHERE id = ?`},
	} {
		if *st.to, err = sqlDB.Prepare(s.d.rebind(st.sql)); err != nil {
			return fmt.Errorf("open store: prepare the audit statements: %w", err)
		}
	}
	return nil
}

func (st *statements) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.tip, st.insertAudit, st.moveHead, st.insertEvent, st.getToken} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
