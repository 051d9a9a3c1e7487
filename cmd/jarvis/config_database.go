package main

// Where Jarvis keeps its state: an SQLite file (DB_PATH, the default) or a
// PostgreSQL database that several replicas share (JARVIS_DATABASE_URL). With
// PostgreSQL there is no file to keep the audit anchor beside, so each
// replica names its own (JARVIS_AUDIT_ANCHOR), and goes by a name among the
// others (JARVIS_REPLICA_ID). A database URL usually holds a password: it is
// never printed, only redactedURL's form of it.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jarvis-homelab/jarvis/store"
)

// maxReplicaID keeps "jarvis/ID" within PostgreSQL's 63-byte application_name.
const maxReplicaID = 56

// loadDatabase checks the database settings and fills their parsed forms.
func (c *Config) loadDatabase() []string {
	var problems []string
	if c.DatabaseURL == "" {
		if c.DBPath == "" {
			problems = append(problems, "DB_PATH: must name the SQLite file, e.g. /var/lib/jarvis/jarvis.db")
		}
	} else {
		// DB_PATH has a default; only a value someone set conflicts.
		if p := os.Getenv("DB_PATH"); p != "" {
			problems = append(problems, fmt.Sprintf("DB_PATH=%s and JARVIS_DATABASE_URL are both set: Jarvis keeps its state in one database, "+
				"the SQLite file DB_PATH or the PostgreSQL database JARVIS_DATABASE_URL; unset one (the container image sets DB_PATH: write DB_PATH= to empty it)", p))
		}
		if problem := checkDatabaseURL(c.DatabaseURL); problem != "" {
			problems = append(problems, problem)
		}
		if c.AuditAnchor == "" {
			problems = append(problems, "JARVIS_AUDIT_ANCHOR: with JARVIS_DATABASE_URL, name this replica's audit anchor file, e.g. /data/jarvis.anchor: "+
				"a file on this replica's own disk, shared with no other replica, where it keeps signed checkpoints of the audit log, "+
				"so that a log rolled back or replaced in the database is noticed")
		}
	}
	if c.AuditAnchor != "" {
		if fi, err := os.Stat(c.AuditAnchor); (err == nil && fi.IsDir()) || strings.HasSuffix(c.AuditAnchor, "/") {
			problems = append(problems, fmt.Sprintf("JARVIS_AUDIT_ANCHOR=%s: is a directory; name the anchor file in it, e.g. %s",
				c.AuditAnchor, strings.TrimSuffix(c.AuditAnchor, "/")+"/jarvis.anchor"))
		}
	}
	if c.ReplicaID == "" {
		c.ReplicaID = defaultReplicaID()
	} else if !replicaIDOK(c.ReplicaID) {
		problems = append(problems, fmt.Sprintf("JARVIS_REPLICA_ID=%q: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", c.ReplicaID, maxReplicaID))
	}
	return problems
}

// checkDatabaseURL says what is wrong with a JARVIS_DATABASE_URL, "" when
// nothing is. It names the value without its password, and pgx's reason
// with the password scrubbed from it too.
func checkDatabaseURL(raw string) string {
	shown := redactedURL(raw)
	if !store.IsDatabaseURL(raw) {
		return fmt.Sprintf("JARVIS_DATABASE_URL=%s: must be a postgres:// or postgresql:// URL, e.g. postgres://jarvis:PASSWORD@db.home.example:5432/jarvis?sslmode=verify-full "+
			"(for an SQLite file, set DB_PATH instead)", shown)
	}
	// Read as URLs are, a ':' ends the password at the first '/', '?' or
	// '#' (what follows would go to the host, the path or the query): pgx
	// might connect with part of it, or print the rest.
	if u := cutURL(raw); strings.ContainsAny(u.password, "/?#") {
		return fmt.Sprintf("JARVIS_DATABASE_URL=%s: the password holds one of / ? # as it is: write each as %%XX (/ as %%2F, ? as %%3F, # as %%23), "+
			"or leave the password out of the URL and set PGPASSWORD", shown)
	}
	if _, err := pgx.ParseConfig(raw); err != nil {
		// pgx's reason without its copies of the URL ("cannot parse `…`: "),
		// which mask the password only as well as they can.
		reason := err.Error()
		for strings.HasPrefix(reason, "cannot parse `") {
			i := strings.Index(reason, "`: ")
			if i < 0 {
				break
			}
			reason = reason[i+3:]
		}
		hint := ""
		if _, err := url.Parse(raw); err != nil {
			hint = " (write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full, with any of :/@?#% in the password written as %XX)"
		}
		return fmt.Sprintf("JARVIS_DATABASE_URL=%s: cannot be read as a PostgreSQL URL: %s%s", shown, scrubPassword(reason, raw), hint)
	}
	return ""
}

// dbURL is a database URL cut so that no part of a password is ever shown,
// also when it does not parse: the user info ends at the last '@' (a
// password may hold '@', '/', '?' or '#' unescaped), and the password
// follows its first ':'. An '@' in the query hides more than the password,
// never less.
type dbURL struct {
	prefix   string // "postgres://", or "" when there is no scheme
	user     string
	password string
	at       bool   // there is user info
	host     string // host, port and database
	params   []string
}

func cutURL(raw string) dbURL {
	var u dbURL
	rest := raw
	if scheme, after, ok := strings.Cut(raw, "://"); ok {
		u.prefix, rest = scheme+"://", after
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		u.at = true
		u.user, u.password, _ = strings.Cut(rest[:at], ":")
		rest = rest[at+1:]
	}
	host, query, _ := strings.Cut(rest, "?")
	u.host = host
	if query != "" {
		u.params = strings.Split(query, "&")
	}
	return u
}

// secretParam says a query parameter of a database URL holds a password.
func secretParam(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	key, err := url.QueryUnescape(k)
	return err == nil && (strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword"))
}

// redactedURL is a database URL as it may be printed: the user, host, port,
// database and settings, without the password.
func redactedURL(raw string) string {
	u := cutURL(raw)
	out := u.prefix
	if u.at {
		out += u.user + "@"
	}
	out += u.host
	var kept []string
	for _, kv := range u.params {
		if !secretParam(kv) {
			kept = append(kept, kv)
		}
	}
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	return out
}

// scrubPassword removes the passwords raw holds from text, as written and
// decoded.
func scrubPassword(text, raw string) string {
	u := cutURL(raw)
	secrets := []string{u.password}
	for _, kv := range u.params {
		if secretParam(kv) {
			_, v, _ := strings.Cut(kv, "=")
			secrets = append(secrets, v)
		}
	}
	for _, s := range secrets {
		forms := []string{s}
		if d, err := url.PathUnescape(s); err == nil {
			forms = append(forms, d)
		}
		if d, err := url.QueryUnescape(s); err == nil {
			forms = append(forms, d)
		}
		for _, f := range forms {
			if f != "" {
				text = strings.ReplaceAll(text, f, "xxxxx")
			}
		}
	}
	return text
}

// onPostgres says the state is in a PostgreSQL database.
func (c *Config) onPostgres() bool { return c.DatabaseURL != "" }

// database is what store.Open is given: the SQLite file, or the database URL
// with this replica's name as its application_name (pg_stat_activity shows
// which replica holds a connection) unless the URL names one.
func (c *Config) database() string {
	if !c.onPostgres() {
		return c.DBPath
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil || u.Query().Has("application_name") {
		return c.DatabaseURL
	}
	q := u.Query()
	q.Set("application_name", "jarvis/"+c.ReplicaID)
	u.RawQuery = q.Encode()
	return u.String()
}

// databaseName names the database for messages and doctor.
func (c *Config) databaseName() string {
	if c.onPostgres() {
		return "PostgreSQL " + redactedURL(c.DatabaseURL)
	}
	return c.DBPath
}

// anchorPath is this process's audit anchor file: JARVIS_AUDIT_ANCHOR (which
// PostgreSQL requires), else the file beside the SQLite file.
func (c *Config) anchorPath() string {
	if c.AuditAnchor != "" {
		return c.AuditAnchor
	}
	return store.AnchorPath(c.DBPath)
}

// defaultReplicaID is the host's name and a random suffix, so two replicas
// started from one image on one host still differ.
func defaultReplicaID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-._")
	if len(name) > maxReplicaID-5 {
		name = name[:maxReplicaID-5]
	}
	if name == "" {
		name = "jarvis"
	}
	var suffix [2]byte
	_, _ = rand.Read(suffix[:])
	return name + "-" + hex.EncodeToString(suffix[:])
}

func replicaIDOK(s string) bool {
	if len(s) < 1 || len(s) > maxReplicaID {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '-' && r != '.' && r != '_')) {
			return false
		}
	}
	return true
}
