package store

import (
	"encoding/json"
	"fmt"
)

// migrateClusters is version 2: the rows that concern one cluster say which.
// events, approvals, rules and audit_log get a cluster column ("" for every
// row so far), indexed where the console searches by it; created_guests is
// keyed by (cluster, vmid), as each cluster has its own VMIDs. The columns of
// rows written before are filled from their arguments, as new rows' are.
func migrateClusters(m migrator) error {
	err := m.exec(
		`ALTER TABLE events ADD COLUMN cluster text NOT NULL DEFAULT ''`,
		`CREATE INDEX idx_events_cluster ON events (cluster)`,
		`ALTER TABLE audit_log ADD COLUMN cluster text NOT NULL DEFAULT ''`,
		`CREATE INDEX idx_audit_log_cluster ON audit_log (cluster)`,
		`ALTER TABLE approvals ADD COLUMN cluster text NOT NULL DEFAULT ''`,
		`ALTER TABLE rules ADD COLUMN cluster text NOT NULL DEFAULT ''`,
	)
	if err != nil {
		return err
	}
	if err := rekeyCreatedGuests(m); err != nil {
		return err
	}
	return fillClusters(m)
}

// rekeyCreatedGuests makes (cluster, vmid) the primary key of
// created_guests. SQLite cannot change a primary key: the table is made
// again and its rows copied.
func rekeyCreatedGuests(m migrator) error {
	if m.postgres() {
		return m.exec(
			`ALTER TABLE created_guests ADD COLUMN cluster text NOT NULL DEFAULT ''`,
			`ALTER TABLE created_guests DROP CONSTRAINT created_guests_pkey`,
			`ALTER TABLE created_guests ADD CONSTRAINT created_guests_pkey PRIMARY KEY (cluster, vmid)`,
		)
	}
	return m.exec(
		`CREATE TABLE created_guests_v2 (
			cluster text NOT NULL DEFAULT '',
			vmid integer NOT NULL,
			node text NOT NULL,
			tool text NOT NULL,
			principal text NOT NULL,
			marker text NOT NULL DEFAULT '',
			begin_id integer NOT NULL,
			created_ns integer NOT NULL,
			PRIMARY KEY (cluster, vmid))`,
		`INSERT INTO created_guests_v2 (cluster, vmid, node, tool, principal, marker, begin_id, created_ns)
			SELECT '', vmid, node, tool, principal, marker, begin_id, created_ns FROM created_guests`,
		`DROP TABLE created_guests`,
		`ALTER TABLE created_guests_v2 RENAME TO created_guests`,
	)
}

// fillClusters sets the new columns of the rows whose arguments name a
// cluster (an installation that served several clusters before version 2):
// audit rows (an end row says its begin row's), approvals and rules. Events
// and created guests never said; they stay "". No row's hash changes: the
// column is not part of it (audit.go).
func fillClusters(m migrator) error {
	// The LIKE only narrows the rows read: clusterOfArgs decides.
	const named = `%"` + clusterArg + `"%`
	var calls []struct {
		ID   uint64
		Args string
	}
	if err := m.tx.Raw(`SELECT id, args FROM audit_log WHERE kind IN ('begin', 'read') AND args LIKE ?`, named).Scan(&calls).Error; err != nil {
		return fmt.Errorf("read audit rows naming a cluster: %w", err)
	}
	ids := map[string][]any{}
	for _, c := range calls {
		if cl := clusterOfArgs(c.Args); cl != "" {
			ids[cl] = append(ids[cl], c.ID)
		}
	}
	if err := setClusters(m, "audit_log", "id", ids); err != nil {
		return err
	}
	err := m.tx.Exec(`UPDATE audit_log SET cluster = (SELECT b.cluster FROM audit_log AS b WHERE b.id = audit_log.begin_id)
		WHERE kind = 'end' AND begin_id IN (SELECT id FROM audit_log WHERE kind = 'begin' AND cluster <> '')`).Error
	if err != nil {
		return fmt.Errorf("fill the cluster of audit end rows: %w", err)
	}

	var approvals []struct{ ID, Args string }
	if err := m.tx.Raw(`SELECT id, args FROM approvals WHERE args LIKE ?`, named).Scan(&approvals).Error; err != nil {
		return fmt.Errorf("read approvals naming a cluster: %w", err)
	}
	ids = map[string][]any{}
	for _, a := range approvals {
		if cl := clusterOfArgs(a.Args); cl != "" {
			ids[cl] = append(ids[cl], a.ID)
		}
	}
	if err := setClusters(m, "approvals", "id", ids); err != nil {
		return err
	}

	var rules []struct {
		ID      string
		Version int
		Args    string
	}
	if err := m.tx.Raw(`SELECT id, version, args FROM rules WHERE args LIKE ?`, named).Scan(&rules).Error; err != nil {
		return fmt.Errorf("read rules naming a cluster: %w", err)
	}
	for _, r := range rules {
		var args map[string][]string
		if json.Unmarshal([]byte(r.Args), &args) != nil {
			continue
		}
		if cl := ruleCluster(args); cl != "" {
			if err := m.tx.Exec(`UPDATE rules SET cluster = ? WHERE id = ? AND version = ?`, cl, r.ID, r.Version).Error; err != nil {
				return fmt.Errorf("fill the cluster of rule %s/v%d: %w", r.ID, r.Version, err)
			}
		}
	}
	return nil
}

// setClusters sets table's cluster column to each cluster for its keys, in
// statements of at most 500 keys.
func setClusters(m migrator, table, key string, keys map[string][]any) error {
	const chunk = 500
	for cl, all := range keys {
		for len(all) > 0 {
			n := min(chunk, len(all))
			err := m.tx.Exec(`UPDATE `+table+` SET cluster = ? WHERE `+key+` IN ?`, cl, all[:n]).Error
			if err != nil {
				return fmt.Errorf("fill the cluster of %s: %w", table, err)
			}
			all = all[n:]
		}
	}
	return nil
}
