package main

// jarvis migrate-store moves an installation from its SQLite file to a
// PostgreSQL database that replicas share, as the same installation: the
// audit log keeps its genesis and chain. store.CopyInto copies and checks;
// this reads where from and where to, makes sure no Jarvis runs on the file,
// and says what to change afterwards.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

const migrateStoreHelp = `Usage: jarvis migrate-store --to postgres://USER:PASSWORD@HOST:5432/DATABASE --anchor PATH [--from PATH] [--from-anchor PATH]

Moves this installation from its SQLite file to an empty PostgreSQL database:
every table, ids and all, in one transaction, so the audit log (the same
installation and hash chain), approvals, standing approvals, agent tokens,
preferences and the feed carry on there. Stop jarvis serve (and any jarvis
stdio) first: it refuses while another process has the file open.

  --to URL       the PostgreSQL database, created empty beforehand
                 (default: JARVIS_DATABASE_URL)
  --anchor PATH  the audit anchor file to write for this replica on
                 PostgreSQL; it must not exist yet (default: JARVIS_AUDIT_ANCHOR)
  --from PATH    the SQLite file (default: DB_PATH)
  --from-anchor PATH
                 its audit anchor file (default: beside it, PATH.anchor; name
                 it when the installation sets JARVIS_AUDIT_ANCHOR)

It refuses a source whose audit log does not verify (see jarvis audit verify)
and a target that holds any Jarvis data, and checks the copy's audit log
against the source's before it says done. The SQLite file is first brought
to this Jarvis's schema, as jarvis serve does when it starts; nothing else in
it changes.
Needs JWT_SECRET (or JWT_SECRET_FILE) as the server has it: the audit log is
sealed with a key derived from it.
`

func init() { help["migrate-store"] = migrateStoreHelp }

// migration is where migrate-store copies from and to, and the secret.
type migration struct {
	source string // the SQLite file
	target string // the PostgreSQL URL, password and all: print redactedURL's form only
	anchor string // the target's anchor file
	// sourceAnchor is the source's anchor file.
	sourceAnchor string
	secret       string
}

func runMigrateStore(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	if demo {
		return usageError{"migrate-store does not take --demo: the demo keeps its state in SQLite"}
	}
	fs := flag.NewFlagSet("migrate-store", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "")
	anchor := fs.String("anchor", "", "")
	from := fs.String("from", "", "")
	fromAnchor := fs.String("from-anchor", "", "")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("migrate-store: %v (see jarvis migrate-store --help)", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("migrate-store: unexpected argument %q (see jarvis migrate-store --help)", fs.Arg(0))}
	}
	m, err := migrationSettings(*from, *to, *anchor)
	if err != nil {
		return err
	}
	m.sourceAnchor = *fromAnchor
	if m.sourceAnchor == "" {
		m.sourceAnchor = store.AnchorPath(m.source)
	}
	// Whatever a running Jarvis wrote after the copy would be lost.
	if err := store.CheckNotInUse(m.source); err != nil {
		if errors.Is(err, store.ErrInUse) {
			return fmt.Errorf("%s is open in another process: stop jarvis serve (and any jarvis stdio, or other program using the file), "+
				"then run jarvis migrate-store again", m.source)
		}
		return err
	}
	// Without its anchor the source is refused before anything is written
	// to it (no missing-anchor alarm in a file about to become a backup).
	src, err := store.Open(m.source, store.Options{AuditKey: safety.DeriveKey(m.secret, "audit-chain"), AnchorPath: m.sourceAnchor,
		RequireAnchor: true})
	if errors.Is(err, store.ErrAnchorMissing) {
		return fmt.Errorf("the audit anchor file of %s, %s, is missing: if the installation sets JARVIS_AUDIT_ANCHOR, name that file with --from-anchor; "+
			"otherwise run jarvis audit verify to see what became of it", m.source, m.sourceAnchor)
	}
	if err != nil {
		return fmt.Errorf("opening database %s: %w", m.source, err)
	}
	open := true
	defer func() {
		if open {
			_ = src.Close()
		}
	}()
	if err := os.MkdirAll(filepath.Dir(m.anchor), 0o700); err != nil {
		return fmt.Errorf("creating the folder of %s: %w", m.anchor, err)
	}
	fmt.Fprintf(stdout, "Copying %s to PostgreSQL %s ...\n", m.source, redactedURL(m.target))
	rep, err := store.CopyInto(ctx, src, m.target, store.CopyOptions{AnchorPath: m.anchor})
	if err != nil {
		return err
	}
	printMigration(stdout, m, rep)
	// A Jarvis started during the copy may have written to the file since.
	open = false
	if err := src.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", m.source, err)
	}
	if err := store.CheckNotInUse(m.source); err != nil {
		return fmt.Errorf("the copy is done, but another process opened %s meanwhile (%v): what it wrote after the copy is not in PostgreSQL. "+
			"Stop it, empty the PostgreSQL database (drop and create it again), remove %s and run jarvis migrate-store again", m.source, err, m.anchor)
	}
	return nil
}

// migrationSettings takes each setting from its flag, else from the variable
// Jarvis reads it from, and lists every problem at once.
func migrationSettings(from, to, anchor string) (migration, error) {
	m := migration{source: from, target: to, anchor: anchor}
	var problems []string
	if m.source == "" {
		path, set := os.LookupEnv("DB_PATH")
		switch {
		case !set:
			m.source = "jarvis.db" // DB_PATH's default, as jarvis serve has it
		case path == "":
			problems = append(problems, "--from: name the SQLite file to copy (DB_PATH is empty)")
		default:
			m.source = path
		}
	}
	if m.source != "" {
		if store.IsDatabaseURL(m.source) {
			problems = append(problems, "--from: name the SQLite file to copy; the copy goes from SQLite to PostgreSQL")
		} else if _, err := os.Stat(m.source); err != nil {
			problems = append(problems, fmt.Sprintf("database %s: %v (name the file jarvis serve uses with --from or DB_PATH)", m.source, err))
		}
	}

	source := "--to"
	if m.target == "" {
		m.target, source = os.Getenv("JARVIS_DATABASE_URL"), "JARVIS_DATABASE_URL"
	}
	switch {
	case m.target == "":
		problems = append(problems, "--to: name the PostgreSQL database to copy into, created empty beforehand, "+
			"e.g. --to postgres://jarvis:PASSWORD@db.home.example:5432/jarvis?sslmode=verify-full (or set JARVIS_DATABASE_URL)")
	case source == "--to":
		if p := checkDatabaseURL(m.target); p != "" {
			problems = append(problems, "--to "+strings.TrimPrefix(p, "JARVIS_DATABASE_URL="))
		}
	default:
		if p := checkDatabaseURL(m.target); p != "" {
			problems = append(problems, p)
		}
	}

	if m.anchor == "" {
		m.anchor = os.Getenv("JARVIS_AUDIT_ANCHOR")
	}
	if m.anchor == "" {
		problems = append(problems, "--anchor: name the audit anchor file to write for this replica on PostgreSQL, e.g. --anchor /data/jarvis.anchor "+
			"(or set JARVIS_AUDIT_ANCHOR): a file on this replica's own disk, which it then keeps as JARVIS_AUDIT_ANCHOR")
	} else if fi, err := os.Stat(m.anchor); (err == nil && fi.IsDir()) || strings.HasSuffix(m.anchor, "/") {
		problems = append(problems, fmt.Sprintf("--anchor %s: is a directory; name the anchor file in it, e.g. %s",
			m.anchor, strings.TrimSuffix(m.anchor, "/")+"/jarvis.anchor"))
	}

	m.secret = os.Getenv("JWT_SECRET")
	if file := os.Getenv("JWT_SECRET_FILE"); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("JWT_SECRET_FILE: cannot read %s: %v", file, err))
		}
		m.secret = strings.TrimRight(string(b), "\r\n")
	}
	if len(m.secret) < 32 {
		problems = append(problems, "JWT_SECRET (or JWT_SECRET_FILE): set it to the secret jarvis serve uses: the audit log is sealed with a key derived from it")
	}
	if len(problems) > 0 {
		return m, fmt.Errorf("migrate-store cannot start:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return m, nil
}

// printMigration says what was copied and checked, and what to change now.
func printMigration(w io.Writer, m migration, rep *store.CopyReport) {
	fmt.Fprintf(w, "Copied %s to %s in %s:\n", m.source, rep.Target, rep.Took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range rep.Tables {
		unit := "rows"
		if t.Rows == 1 {
			unit = "row"
		}
		fmt.Fprintf(tw, "  %s\t%d %s\n", t.Name, t.Rows, unit)
	}
	_ = tw.Flush()
	if rep.HeadID == 0 {
		fmt.Fprintf(w, "The audit log (installation %s) verifies on PostgreSQL; it has no rows yet.\n", rep.Audit.Installation)
	} else {
		hash := rep.HeadHash
		if len(hash) > 16 {
			hash = hash[:16] + "..."
		}
		fmt.Fprintf(w, "The audit log verifies on PostgreSQL as in the SQLite file: %d rows, up to row %d (hash %s), installation %s.\n",
			rep.Audit.Rows, rep.HeadID, hash, rep.Audit.Installation)
	}
	fmt.Fprintf(w, "This replica's anchor file: %s (checkpoint at row %d).\n", m.anchor, rep.Audit.Checkpoint)
	fmt.Fprintf(w, `
Next:
  1. Set, for jarvis serve and the host commands alike:
       JARVIS_DATABASE_URL=%s   (with its password, or in PGPASSWORD)
       JARVIS_AUDIT_ANCHOR=%s
       DB_PATH=   (empty)
  2. Start jarvis serve; jarvis audit verify checks the log on PostgreSQL.
  3. Before another replica starts, copy %s to its own JARVIS_AUDIT_ANCHOR.
  4. Keep %s and its anchor file as they are, as a backup: nothing writes to them any more.
`, redactedURL(m.target), m.anchor, m.anchor, m.source)
}
