package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Approval is a human's permission for one specific tool call: bound to the
// principal, tool and canonical arguments, valid until ExpiresAt, usable once.
type Approval struct {
	ID         string     `json:"id"` // "apr_" + 16 hex characters
	Principal  string     `json:"principal"`
	Tool       string     `json:"tool"`
	Cluster    string     `json:"cluster,omitempty"` // the call's; CreateApproval takes the one Args names if empty
	Args       string     `json:"args"`              // canonical JSON
	Plan       string     `json:"plan"`
	Tier       string     `json:"tier"`
	Status     string     `json:"status"` // pending|approved|denied|expired|consumed
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	DecidedAt  *time.Time `json:"decided_at,omitempty"`
	DecidedBy  string     `json:"decided_by,omitempty"`
	ConsumedAt *time.Time `json:"consumed_at,omitempty"`
}

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalConsumed = "consumed"
)

var approvalStatuses = map[string]bool{
	ApprovalPending: true, ApprovalApproved: true, ApprovalDenied: true, ApprovalExpired: true, ApprovalConsumed: true,
}

type approvalRecord struct {
	ID         string `gorm:"primaryKey"`
	Principal  string `gorm:"not null"`
	Tool       string `gorm:"not null"`
	Args       string `gorm:"type:text;not null;default:''"`
	Plan       string `gorm:"type:text;not null;default:''"`
	Tier       string `gorm:"not null;default:''"`
	Status     string `gorm:"not null;index"`
	CreatedNS  int64  `gorm:"not null;index"`
	ExpiresNS  int64  `gorm:"not null"`
	DecidedNS  *int64
	DecidedBy  string `gorm:"not null;default:''"`
	ConsumedNS *int64
	Cluster    string `gorm:"not null;default:''"`
}

func (approvalRecord) TableName() string { return "approvals" }

func (r approvalRecord) approval() Approval {
	return Approval{
		ID: r.ID, Principal: r.Principal, Tool: r.Tool, Cluster: r.Cluster, Args: r.Args, Plan: r.Plan, Tier: r.Tier,
		Status: r.Status, CreatedAt: fromNS(r.CreatedNS), ExpiresAt: fromNS(r.ExpiresNS),
		DecidedAt: fromNSPtr(r.DecidedNS), DecidedBy: r.DecidedBy, ConsumedAt: fromNSPtr(r.ConsumedNS),
	}
}

// newApprovalID returns "apr_" and 16 random hex characters.
func newApprovalID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate approval id: %w", err)
	}
	return "apr_" + hex.EncodeToString(b[:]), nil
}

// IsApprovalID reports whether id has the shape newApprovalID gives.
func IsApprovalID(id string) bool {
	if len(id) != len("apr_")+16 || !strings.HasPrefix(id, "apr_") {
		return false
	}
	_, err := hex.DecodeString(id[len("apr_"):])
	return err == nil && strings.ToLower(id) == id
}

// CreateApproval stores a new pending approval. It sets a.ID and a.Status,
// a.CreatedAt when zero, and a.Cluster when empty to the cluster a.Args
// names; a cluster that differs from the one a.Args names is refused.
// ExpiresAt must be later than CreatedAt.
func (s *Store) CreateApproval(ctx context.Context, a *Approval) error {
	if a == nil {
		return errors.New("create approval: approval is nil")
	}
	if a.Principal == "" || a.Tool == "" {
		return errors.New("create approval: principal and tool are required")
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	if !a.ExpiresAt.After(a.CreatedAt) {
		return fmt.Errorf("create approval for %s: expiry %s is not after creation %s",
			a.Tool, a.ExpiresAt.Format(time.RFC3339), a.CreatedAt.Format(time.RFC3339))
	}
	switch named := clusterOfArgs(a.Args); {
	case a.Cluster == "":
		a.Cluster = named
	case named != "" && named != a.Cluster:
		return fmt.Errorf("create approval for %s: it says cluster %s, its arguments name %s", a.Tool, a.Cluster, named)
	}
	id, err := newApprovalID()
	if err != nil {
		return fmt.Errorf("create approval for %s: %w", a.Tool, err)
	}
	// The plan names what the cluster calls things (text.go); ConsumeApproval
	// cleans the binding it is compared with alike.
	rec := approvalRecord{
		ID: id, Principal: cleanText(a.Principal), Tool: cleanText(a.Tool), Cluster: cleanText(a.Cluster), Args: cleanText(a.Args),
		Plan: cleanText(a.Plan), Tier: cleanText(a.Tier), Status: ApprovalPending, CreatedNS: toNS(a.CreatedAt), ExpiresNS: toNS(a.ExpiresAt),
	}
	if err := s.db.WithContext(ctx).Create(&rec).Error; err != nil {
		return fmt.Errorf("create approval for %s: %w", a.Tool, err)
	}
	*a = rec.approval()
	return nil
}

// GetApproval returns the approval with id, or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (*Approval, error) {
	rec, err := s.loadApproval(s.db.WithContext(ctx), id)
	if err != nil {
		return nil, fmt.Errorf("get approval %s: %w", id, err)
	}
	a := rec.approval()
	return &a, nil
}

func (s *Store) loadApproval(db *gorm.DB, id string) (approvalRecord, error) {
	var rec approvalRecord
	if err := db.Where("id = ?", id).Take(&rec).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return rec, ErrNotFound
		}
		return rec, err
	}
	return rec, nil
}

// ListApprovals returns approvals with the given status ("" for all), newest
// first.
func (s *Store) ListApprovals(ctx context.Context, status string) ([]Approval, error) {
	q := s.db.WithContext(ctx).Model(&approvalRecord{})
	if status != "" {
		if !approvalStatuses[status] {
			return nil, fmt.Errorf("list approvals: unknown status %q (want pending, approved, denied, expired or consumed)", status)
		}
		q = q.Where("status = ?", status)
	}
	var recs []approvalRecord
	if err := q.Order("created_ns DESC, " + s.d.byteOrder("id") + " DESC").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out := make([]Approval, len(recs))
	for i, r := range recs {
		out[i] = r.approval()
	}
	return out, nil
}

// CountApprovals is how many approvals have the given status (a metrics gauge).
func (s *Store) CountApprovals(ctx context.Context, status string) (int64, error) {
	if !approvalStatuses[status] {
		return 0, fmt.Errorf("count approvals: unknown status %q (want pending, approved, denied, expired or consumed)", status)
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(&approvalRecord{}).Where("status = ?", status).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count approvals: %w", err)
	}
	return n, nil
}

// DecideApproval approves or denies a pending, unexpired approval. Otherwise
// it fails with ErrNotFound, ErrNotPending (already decided or consumed) or
// ErrExpired; a pending approval found past its expiry is marked expired and
// returned alongside ErrExpired so the caller can announce it.
func (s *Store) DecideApproval(ctx context.Context, id string, approve bool, by string, now time.Time) (*Approval, error) {
	status, verb := ApprovalDenied, "deny"
	if approve {
		status, verb = ApprovalApproved, "approve"
	}
	db := s.db.WithContext(ctx)
	var recs []approvalRecord
	err := db.Raw(`UPDATE approvals SET status = ?, decided_ns = ?, decided_by = ?
		WHERE id = ? AND status = ? AND expires_ns > ? RETURNING *`,
		status, now.UnixNano(), cleanText(by), id, ApprovalPending, now.UnixNano()).Scan(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("%s approval %s: %w", verb, id, err)
	}
	if len(recs) == 1 {
		a := recs[0].approval()
		return &a, nil
	}

	// Nothing changed: say why.
	rec, err := s.loadApproval(db, id)
	if err != nil {
		return nil, fmt.Errorf("%s approval %s: %w", verb, id, err)
	}
	switch rec.Status {
	case ApprovalPending: // pending, so it must have expired
		expired, err := s.expireOne(db, id, now)
		if err != nil {
			return nil, fmt.Errorf("%s approval %s: %w", verb, id, err)
		}
		return expired, fmt.Errorf("%s approval %s: it expired at %s: %w", verb, id,
			fromNS(rec.ExpiresNS).Format(time.RFC3339), ErrExpired)
	case ApprovalExpired:
		return nil, fmt.Errorf("%s approval %s: %w", verb, id, ErrExpired)
	default:
		return nil, fmt.Errorf("%s approval %s: it is already %s: %w", verb, id, rec.Status, ErrNotPending)
	}
}

// expireOne marks one pending or approved approval expired if it is past its
// expiry at now, and returns it as stored afterwards.
func (s *Store) expireOne(db *gorm.DB, id string, now time.Time) (*Approval, error) {
	err := db.Model(&approvalRecord{}).
		Where("id = ? AND status IN ? AND expires_ns <= ?", id, []string{ApprovalPending, ApprovalApproved}, now.UnixNano()).
		Update("status", ApprovalExpired).Error
	if err != nil {
		return nil, fmt.Errorf("mark it expired: %w", err)
	}
	rec, err := s.loadApproval(db, id)
	if err != nil {
		return nil, fmt.Errorf("read it back: %w", err)
	}
	a := rec.approval()
	return &a, nil
}

// Binding is what an approval was granted for: who, which tool, exactly which
// arguments, and the plan sentence the person read.
type Binding struct {
	Principal, Tool, Args, Plan string
}

// ConsumeApproval marks an approved, unexpired approval bound to b as used and
// returns it. It is one conditional UPDATE, so among concurrent callers — in any
// process — exactly one wins. When it cannot, the error says why (ErrMismatch,
// ErrPlanChanged, ErrAlreadyConsumed, ErrNotApproved, ErrExpired, ErrNotFound)
// and the approval as it stands is returned with it when it exists, so the
// caller need not read it again.
func (s *Store) ConsumeApproval(ctx context.Context, id string, b Binding, now time.Time) (*Approval, error) {
	b = Binding{Principal: cleanText(b.Principal), Tool: cleanText(b.Tool), Args: cleanText(b.Args), Plan: cleanText(b.Plan)} // as CreateApproval stored it
	db := s.db.WithContext(ctx)
	var recs []approvalRecord
	err := db.Raw(`UPDATE approvals SET status = ?, consumed_ns = ?
		WHERE id = ? AND status = ? AND principal = ? AND tool = ? AND args = ? AND plan = ? AND expires_ns > ? RETURNING *`,
		ApprovalConsumed, now.UnixNano(), id, ApprovalApproved, b.Principal, b.Tool, b.Args, b.Plan, now.UnixNano()).Scan(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("use approval %s: %w", id, err)
	}
	if len(recs) == 1 {
		a := recs[0].approval()
		return &a, nil
	}

	// Nothing changed: say why. The binding is checked first so a caller it
	// was not granted to learns nothing about its state.
	rec, err := s.loadApproval(db, id)
	if err != nil {
		return nil, fmt.Errorf("use approval %s: %w", id, err)
	}
	var differ []string
	if rec.Principal != b.Principal {
		differ = append(differ, "principal")
	}
	if rec.Tool != b.Tool {
		differ = append(differ, "tool")
	}
	if rec.Args != b.Args {
		differ = append(differ, "arguments")
	}
	if len(differ) > 0 {
		return nil, fmt.Errorf("use approval %s: the %s differ from what was approved: %w", id, strings.Join(differ, ", "), ErrMismatch)
	}
	a := rec.approval()
	switch {
	case rec.Status == ApprovalApproved && rec.Plan != b.Plan:
		// The same arguments name another target by now (a guest recreated,
		// moved or renamed): that was not what the person approved.
		return &a, fmt.Errorf("use approval %s: the plan changed since it was approved: %w", id, ErrPlanChanged)
	case rec.Status == ApprovalConsumed:
		return &a, fmt.Errorf("use approval %s: %w", id, ErrAlreadyConsumed)
	case rec.Status == ApprovalPending || rec.Status == ApprovalDenied:
		return &a, fmt.Errorf("use approval %s: it is %s: %w", id, rec.Status, ErrNotApproved)
	case rec.Status == ApprovalApproved: // approved and bound right, so it must have expired
		if _, err := s.expireOne(db, id, now); err != nil {
			return nil, fmt.Errorf("use approval %s: %w", id, err)
		}
		a.Status = ApprovalExpired
		return &a, fmt.Errorf("use approval %s: it expired at %s: %w", id, fromNS(rec.ExpiresNS).Format(time.RFC3339), ErrExpired)
	default:
		return &a, fmt.Errorf("use approval %s: %w", id, ErrExpired)
	}
}

// ExpireApprovals marks every pending or approved-but-unused approval whose
// expiry is at or before now as expired and returns them, oldest first, so a
// stale grant never shows as live.
func (s *Store) ExpireApprovals(ctx context.Context, now time.Time) ([]Approval, error) {
	var recs []approvalRecord
	err := s.db.WithContext(ctx).Raw(`UPDATE approvals SET status = ? WHERE status IN (?, ?) AND expires_ns <= ? RETURNING *`,
		ApprovalExpired, ApprovalPending, ApprovalApproved, now.UnixNano()).Scan(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("expire approvals: %w", err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].CreatedNS < recs[j].CreatedNS })
	out := make([]Approval, len(recs))
	for i, r := range recs {
		out[i] = r.approval()
	}
	return out, nil
}
