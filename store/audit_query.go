package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Searching the audit log and the approvals decided, for the console. Both are
// read-only views: nothing here writes a row. Every filter is a bound
// parameter; the SQL text is fixed.

// AuditCall is one call as the log tells it: a GREEN read's one row, or a
// change's begin row with the end row that closed it (if any). The plan and
// the arguments come from the begin row, the outcome from the end row.
type AuditCall struct {
	ID         uint64     `json:"id"`               // the read or begin row
	EndID      uint64     `json:"end_id,omitempty"` // the end row, when there is one
	Kind       string     `json:"kind"`             // "read" (one row) or "call" (begin and end)
	Time       time.Time  `json:"time"`
	EndTime    *time.Time `json:"end_time,omitempty"`
	Principal  string     `json:"principal"`
	Tool       string     `json:"tool"`
	Cluster    string     `json:"cluster,omitempty"` // as AuditRow.Cluster
	Args       string     `json:"args"`
	Tier       string     `json:"tier"`
	Decision   string     `json:"decision"`
	Plan       string     `json:"plan,omitempty"`
	ApprovalID string     `json:"approval_id,omitempty"`
	// Outcome is ok, failed, unknown, refused or interrupted; "running"
	// while a begin row has no end row yet.
	Outcome    string `json:"outcome"`
	Error      string `json:"error,omitempty"`
	UPID       string `json:"upid,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Result     string `json:"result,omitempty"`
}

// OutcomeRunning is AuditCall.Outcome for a call whose end row is not written
// (yet: it runs, or Jarvis stopped before Recover marked it).
const OutcomeRunning = "running"

// AuditSearchOutcomes are the outcomes AuditFilter.Outcome accepts.
var AuditSearchOutcomes = []string{OutcomeOK, OutcomeFailed, OutcomeUnknown, OutcomeRefused, OutcomeInterrupted, OutcomeRunning}

// Limits on AuditSearch and ApprovalHistory.
const (
	DefaultSearchLimit = 100
	MaxSearchLimit     = 500
)

// AuditFilter selects calls; zero fields do not filter. Results are newest
// first and paged by id: pass the NextBeforeID of one page as BeforeID of the
// next.
type AuditFilter struct {
	Tool string
	// Principal matches exactly; a value ending in '*' matches every
	// principal starting with what comes before it ("agent:*").
	Principal string
	Cluster   string // the cluster the call's arguments name, exactly
	Tier      string
	Decision  string
	Outcome   string // one of AuditSearchOutcomes; "failed" includes the old "error"
	Since     time.Time
	Until     time.Time // inclusive
	BeforeID  uint64    // only calls whose first row is older than this row
	Limit     int       // 1..MaxSearchLimit; 0 means DefaultSearchLimit
}

// AuditPage is one page of AuditSearch.
type AuditPage struct {
	Calls []AuditCall `json:"calls"`
	// More says older calls match too; NextBeforeID fetches them.
	More         bool   `json:"more"`
	NextBeforeID uint64 `json:"next_before_id,omitempty"`
}

// auditCallRow is what the search query selects: the first row of a call and,
// through the LEFT JOIN, the end row closing it.
type auditCallRow struct {
	ID            uint64  `gorm:"column:id"`
	TimeNS        int64   `gorm:"column:time_ns"`
	Kind          string  `gorm:"column:kind"`
	Principal     string  `gorm:"column:principal"`
	Tool          string  `gorm:"column:tool"`
	Cluster       string  `gorm:"column:cluster"`
	Args          string  `gorm:"column:args"`
	Tier          string  `gorm:"column:tier"`
	Decision      string  `gorm:"column:decision"`
	Plan          string  `gorm:"column:plan"`
	ApprovalID    string  `gorm:"column:approval_id"`
	Status        string  `gorm:"column:status"`
	Error         string  `gorm:"column:error"`
	UPID          string  `gorm:"column:upid"`
	DurationMS    int64   `gorm:"column:duration_ms"`
	Result        string  `gorm:"column:result"`
	EndID         *uint64 `gorm:"column:end_id"`
	EndTimeNS     *int64  `gorm:"column:end_time_ns"`
	EndStatus     *string `gorm:"column:end_status"`
	EndError      *string `gorm:"column:end_error"`
	EndUPID       *string `gorm:"column:end_upid"`
	EndDurationMS *int64  `gorm:"column:end_duration_ms"`
	EndResult     *string `gorm:"column:end_result"`
}

func (r auditCallRow) call() AuditCall {
	c := AuditCall{
		ID: r.ID, Kind: "read", Time: fromNS(r.TimeNS), Principal: r.Principal, Tool: r.Tool, Cluster: r.Cluster, Args: r.Args,
		Tier: r.Tier, Decision: r.Decision, Plan: r.Plan, ApprovalID: r.ApprovalID,
		Outcome: r.Status, Error: r.Error, UPID: r.UPID, DurationMS: r.DurationMS, Result: r.Result,
	}
	if r.Kind == "read" {
		return c
	}
	c.Kind, c.Outcome = "call", OutcomeRunning
	c.Error, c.UPID, c.DurationMS, c.Result = "", "", 0, ""
	if r.EndID == nil {
		return c
	}
	c.EndID = *r.EndID
	c.EndTime = fromNSPtr(r.EndTimeNS)
	c.Outcome = deref(r.EndStatus)
	c.Error, c.UPID, c.Result = deref(r.EndError), deref(r.EndUPID), deref(r.EndResult)
	if r.EndDurationMS != nil {
		c.DurationMS = *r.EndDurationMS
	}
	return c
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// The outcome of a call, in SQL: a read row's own status, else its end row's,
// else empty (no end row: running).
const auditOutcomeSQL = "(CASE WHEN b.kind = 'read' THEN b.status ELSE COALESCE(e.status, '') END)"

// AuditSearch returns one page of calls matching f, newest first. The filter
// is checked (ErrInvalidFilter names what is wrong); every value reaches the database
// as a bound parameter.
func (s *Store) AuditSearch(ctx context.Context, f AuditFilter) (AuditPage, error) {
	if err := f.check(); err != nil {
		return AuditPage{}, err
	}
	// Rows hold their text made storable (text.go): so must what finds them.
	f.Tool, f.Principal, f.Cluster, f.Tier, f.Decision = cleanText(f.Tool), cleanText(f.Principal), cleanText(f.Cluster), cleanText(f.Tier), cleanText(f.Decision)
	limit := f.Limit
	if limit == 0 {
		limit = DefaultSearchLimit
	}
	q := s.db.WithContext(ctx).Table("audit_log AS b").
		Select(`b.id, b.time_ns, b.kind, b.principal, b.tool, b.cluster, b.args, b.tier, b.decision, b.plan, b.approval_id,
			b.status, b.error, b.upid, b.duration_ms, b.result,
			e.id AS end_id, e.time_ns AS end_time_ns, e.status AS end_status, e.error AS end_error,
			e.upid AS end_upid, e.duration_ms AS end_duration_ms, e.result AS end_result`).
		// One end row at most per call, even in a log someone tampered with
		// (audit verify reports that; the viewer must not repeat rows).
		Joins("LEFT JOIN audit_log AS e ON e.id = (SELECT MIN(x.id) FROM audit_log AS x WHERE x.kind = ? AND x.begin_id = b.id)", "end").
		Where("b.kind IN ?", []string{"begin", "read"})
	if f.Tool != "" {
		q = q.Where("b.tool = ?", f.Tool)
	}
	if f.Principal != "" {
		if prefix, ok := strings.CutSuffix(f.Principal, "*"); ok {
			// ASCII letters in any case, as SQLite's LIKE has always matched.
			q = q.Where(s.d.prefixMatch("b.principal"), escapeLike(prefix)+"%")
		} else {
			q = q.Where("b.principal = ?", f.Principal)
		}
	}
	if f.Cluster != "" {
		q = q.Where("b.cluster = ?", f.Cluster)
	}
	if f.Tier != "" {
		q = q.Where("b.tier = ?", f.Tier)
	}
	if f.Decision != "" {
		q = q.Where("b.decision = ?", f.Decision)
	}
	switch f.Outcome {
	case "":
	case OutcomeRunning:
		q = q.Where(auditOutcomeSQL + " = ''")
	case OutcomeFailed:
		q = q.Where(auditOutcomeSQL+" IN ?", []string{OutcomeFailed, "error"})
	default:
		q = q.Where(auditOutcomeSQL+" = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		q = q.Where("b.time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		q = q.Where("b.time_ns <= ?", f.Until.UnixNano())
	}
	if f.BeforeID > 0 {
		q = q.Where("b.id < ?", f.BeforeID)
	}
	var rows []auditCallRow
	if err := q.Order("b.id DESC").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return AuditPage{}, fmt.Errorf("search the audit log: %w", err)
	}
	page := AuditPage{Calls: make([]AuditCall, 0, min(len(rows), limit))}
	if len(rows) > limit {
		page.More = true
		rows = rows[:limit]
	}
	for _, r := range rows {
		page.Calls = append(page.Calls, r.call())
	}
	if page.More {
		page.NextBeforeID = rows[len(rows)-1].ID
	}
	return page, nil
}

// ErrInvalidFilter is a search filter the store refuses; the message says why.
var ErrInvalidFilter = errors.New("invalid filter")

func (f AuditFilter) check() error {
	var problems []string
	if f.Limit < 0 || f.Limit > MaxSearchLimit {
		problems = append(problems, fmt.Sprintf("limit %d is not in 1..%d", f.Limit, MaxSearchLimit))
	}
	if f.Outcome != "" && !slices.Contains(AuditSearchOutcomes, f.Outcome) {
		problems = append(problems, fmt.Sprintf("outcome %q is not one of %s", f.Outcome, strings.Join(AuditSearchOutcomes, ", ")))
	}
	if f.Principal == "*" {
		problems = append(problems, "principal * matches everyone; leave it out instead")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		problems = append(problems, "until is before since")
	}
	if f.BeforeID > 1<<63-1 {
		problems = append(problems, "before_id is past the largest row id")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidFilter, strings.Join(problems, "; "))
	}
	return nil
}

// escapeLike makes s match itself literally in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ApprovalDecidedStatuses are the statuses of approvals no longer waiting.
var ApprovalDecidedStatuses = []string{ApprovalApproved, ApprovalDenied, ApprovalExpired, ApprovalConsumed}

// ApprovalHistoryFilter selects decided approvals, newest request first.
type ApprovalHistoryFilter struct {
	Status  string // one of ApprovalDecidedStatuses; "" for all of them
	Cluster string // Approval.Cluster exactly; "" for every cluster
	// Before is the id of the last approval of the previous page: only
	// approvals requested before it are returned.
	Before string
	Limit  int // 1..MaxSearchLimit; 0 means DefaultSearchLimit
}

// ApprovalPage is one page of ApprovalHistory.
type ApprovalPage struct {
	Approvals []Approval `json:"approvals"`
	More      bool       `json:"more"`
	// NextBefore fetches the next (older) page.
	NextBefore string `json:"next_before,omitempty"`
}

// ApprovalHistory lists approvals that are no longer pending (approved,
// denied, expired, consumed), newest request first, paged by (request time,
// id). A Before that names no approval is ErrNotFound.
func (s *Store) ApprovalHistory(ctx context.Context, f ApprovalHistoryFilter) (ApprovalPage, error) {
	var problems []string
	if f.Status != "" && !slices.Contains(ApprovalDecidedStatuses, f.Status) {
		problems = append(problems, fmt.Sprintf("status %q is not one of %s", f.Status, strings.Join(ApprovalDecidedStatuses, ", ")))
	}
	if f.Limit < 0 || f.Limit > MaxSearchLimit {
		problems = append(problems, fmt.Sprintf("limit %d is not in 1..%d", f.Limit, MaxSearchLimit))
	}
	if f.Before != "" && !IsApprovalID(f.Before) {
		problems = append(problems, fmt.Sprintf("before %q is not an approval id", f.Before))
	}
	if len(problems) > 0 {
		return ApprovalPage{}, fmt.Errorf("approval history: %w: %s", ErrInvalidFilter, strings.Join(problems, "; "))
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultSearchLimit
	}
	db := s.db.WithContext(ctx)
	q := db.Model(&approvalRecord{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	} else {
		q = q.Where("status IN ?", ApprovalDecidedStatuses)
	}
	if f.Cluster != "" {
		q = q.Where("cluster = ?", f.Cluster)
	}
	if f.Before != "" {
		var cursor approvalRecord
		err := db.Select("id", "created_ns").Where("id = ?", f.Before).Take(&cursor).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ApprovalPage{}, fmt.Errorf("approval history: before %s: %w", f.Before, ErrNotFound)
		}
		if err != nil {
			return ApprovalPage{}, fmt.Errorf("approval history: read approval %s: %w", f.Before, err)
		}
		id := s.d.byteOrder("id")
		q = q.Where("(created_ns < ? OR (created_ns = ? AND "+id+" < ?))", cursor.CreatedNS, cursor.CreatedNS, cursor.ID)
	}
	var recs []approvalRecord
	if err := q.Order("created_ns DESC, " + s.d.byteOrder("id") + " DESC").Limit(limit + 1).Find(&recs).Error; err != nil {
		return ApprovalPage{}, fmt.Errorf("approval history: %w", err)
	}
	page := ApprovalPage{Approvals: make([]Approval, 0, min(len(recs), limit))}
	if len(recs) > limit {
		page.More = true
		recs = recs[:limit]
	}
	for _, r := range recs {
		page.Approvals = append(page.Approvals, r.approval())
	}
	if page.More {
		page.NextBefore = recs[len(recs)-1].ID
	}
	return page, nil
}
