package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
)

// Read-only views of the audit log and of the approvals decided, for the
// console. Nothing here writes: the log is changed by the dispatch path only.

// queryProblems collects what is wrong with a query string, naming each
// parameter, so one 400 says everything there is to fix.
type queryProblems struct {
	fields   []string
	problems []string
}

func (q *queryProblems) add(field, format string, args ...any) {
	if !slices.Contains(q.fields, field) {
		q.fields = append(q.fields, field)
	}
	q.problems = append(q.problems, fmt.Sprintf(format, args...))
}

// err is the 400 for the problems found, or nil: the message lists them all;
// details names the fields (field: the first) for clients that highlight them.
func (q *queryProblems) err() error {
	if len(q.problems) == 0 {
		return nil
	}
	return apiError(http.StatusBadRequest, strings.Join(q.problems, "; "),
		map[string]any{"field": q.fields[0], "fields": q.fields, "problems": q.problems})
}

// one reads a query parameter given at most once; known lists the parameters
// the endpoint takes, and any other is refused (a typo must not silently
// widen a search).
func queryOnce(c echo.Context, q *queryProblems, known []string) map[string]string {
	out := map[string]string{}
	for name, vals := range c.QueryParams() {
		if !slices.Contains(known, name) {
			q.add(name, "unknown parameter %q: this endpoint takes %s", name, strings.Join(known, ", "))
			continue
		}
		if len(vals) > 1 {
			q.add(name, "give %s once", name)
			continue
		}
		out[name] = strings.TrimSpace(vals[0])
	}
	return out
}

// searchLimit reads limit: 1..store.MaxSearchLimit, default store.DefaultSearchLimit.
func searchLimit(v string, q *queryProblems) int {
	if v == "" {
		return store.DefaultSearchLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > store.MaxSearchLimit {
		q.add("limit", "limit must be a whole number from 1 to %d", store.MaxSearchLimit)
	}
	return n
}

// auditToolRE is a tool name as the catalogue spells them (and the BLACK ones).
var auditToolRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// auditDecisions are the decisions the dispatch path records: the policy's,
// and its own for a call that was invalid, waits for an input request, ran
// after a person approved it, or ran under a standing approval.
var auditDecisions = []string{
	string(safety.Allow), string(safety.NeedsApproval), string(safety.Blocked), string(safety.Denied),
	string(safety.Expired), string(safety.RateLimited), string(safety.KillSwitch), string(safety.ReadOnlyMode),
	string(safety.Protected), "invalid", "confirmation_requested", store.ApprovalApproved, server.DecisionRule,
}

var auditTiers = []string{"green", "yellow", "red", "black"}

var auditSearchParams = []string{"tool", "principal", "tier", "decision", "outcome", "since", "until", "limit", "before_id"}

// withCluster is the parameters of a search, with cluster when several
// clusters are served. With one it stays unknown, as before clusters: every
// row is that cluster's.
func (a *App) withCluster(params []string) []string {
	if len(a.opts.Server.ClusterNames()) < 2 {
		return params
	}
	return append(slices.Clone(params), "cluster")
}

// clusterFilter checks a cluster filter (v, "" for none): one of the
// clusters served, spelt exactly. Rows from before several clusters were
// configured name none, and no cluster filter matches them.
func (a *App) clusterFilter(v string, q *queryProblems) string {
	if names := a.opts.Server.ClusterNames(); v != "" && !slices.Contains(names, v) {
		q.add("cluster", "no cluster %s: one of %s", v, strings.Join(names, ", "))
	}
	return v
}

// auditFilter reads and checks the audit search's query string.
func (a *App) auditFilter(c echo.Context) (store.AuditFilter, error) {
	var q queryProblems
	p := queryOnce(c, &q, a.withCluster(auditSearchParams))
	f := store.AuditFilter{Limit: searchLimit(p["limit"], &q), Cluster: a.clusterFilter(p["cluster"], &q)}
	if v := p["tool"]; v != "" {
		if !auditToolRE.MatchString(v) {
			q.add("tool", "tool must be a tool name: lower-case letters, digits and _, as in stop_vm")
		}
		f.Tool = v
	}
	if v := p["principal"]; v != "" {
		switch {
		case len(v) > 200:
			q.add("principal", "principal is at most 200 characters")
		case strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0:
			q.add("principal", "principal must be printable text, as in operator or agent:name/tok_…")
		case v == "*" || strings.Count(v, "*") > 1 || (strings.Contains(v, "*") && !strings.HasSuffix(v, "*")):
			q.add("principal", "principal matches exactly, or by prefix with one * at the end (agent:*); leave it out to match everyone")
		}
		f.Principal = v
	}
	if v := p["tier"]; v != "" {
		if !slices.Contains(auditTiers, v) {
			q.add("tier", "tier must be one of %s", strings.Join(auditTiers, ", "))
		}
		f.Tier = v
	}
	if v := p["decision"]; v != "" {
		if !slices.Contains(auditDecisions, v) {
			q.add("decision", "decision must be one of %s", strings.Join(auditDecisions, ", "))
		}
		f.Decision = v
	}
	if v := p["outcome"]; v != "" {
		if !slices.Contains(store.AuditSearchOutcomes, v) {
			q.add("outcome", "outcome must be one of %s", strings.Join(store.AuditSearchOutcomes, ", "))
		}
		f.Outcome = v
	}
	for _, name := range []string{"since", "until"} {
		v := p[name]
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			q.add(name, "%s must be an RFC 3339 time, e.g. 2026-11-26T08:00:00Z", name)
			continue
		}
		if name == "since" {
			f.Since = t
		} else {
			f.Until = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		q.add("until", "until is before since; swap them")
	}
	if v := p["before_id"]; v != "" {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil || id < 1 || id > math.MaxInt64 {
			q.add("before_id", "before_id must be a row id from a previous page (next_before_id), a whole number from 1 to %d", int64(math.MaxInt64))
		}
		f.BeforeID = id
	}
	return f, q.err()
}

// searchAudit answers GET /api/audit/search: calls from the audit log, newest
// first, one line per call (a read's row, or a begin row with its end row),
// filtered and paged by id (before_id = the previous page's next_before_id).
func (a *App) searchAudit(c echo.Context) error {
	f, err := a.auditFilter(c)
	if err != nil {
		return err
	}
	page, err := a.opts.Store.AuditSearch(c.Request().Context(), f)
	if errors.Is(err, store.ErrInvalidFilter) {
		return apiError(http.StatusBadRequest, err.Error(), nil)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

var approvalHistoryParams = []string{"status", "limit", "before"}

// approvalHistory answers GET /api/approvals/history: approvals no longer
// pending (approved, denied, expired, consumed), newest request first, with
// who asked, the plan, who decided and when; paged with before = the previous
// page's next_before.
func (a *App) approvalHistory(c echo.Context) error {
	var q queryProblems
	p := queryOnce(c, &q, a.withCluster(approvalHistoryParams))
	f := store.ApprovalHistoryFilter{Limit: searchLimit(p["limit"], &q), Status: p["status"], Before: p["before"],
		Cluster: a.clusterFilter(p["cluster"], &q)}
	if f.Status != "" && !slices.Contains(store.ApprovalDecidedStatuses, f.Status) {
		q.add("status", "status must be one of %s (pending ones are at /api/approvals?status=pending)", strings.Join(store.ApprovalDecidedStatuses, ", "))
	}
	if f.Before != "" && !store.IsApprovalID(f.Before) {
		q.add("before", "before must be an approval id from a previous page (next_before): apr_ followed by 16 hex digits")
	}
	if err := q.err(); err != nil {
		return err
	}
	page, err := a.opts.Store.ApprovalHistory(c.Request().Context(), f)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusBadRequest, "before names no approval; use next_before from the previous page", map[string]string{"field": "before"})
	case errors.Is(err, store.ErrInvalidFilter):
		return apiError(http.StatusBadRequest, err.Error(), nil)
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, page)
}
