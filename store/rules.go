package store

// Standing approvals ("rules"): a person decides in advance that one caller
// may make one RED call shape without asking, within a budget. The store keeps
// every version of every rule and every use of one; the server decides whether
// a call matches (server/rules.go). Only an operator creates, changes or
// revokes a rule: nothing here is reachable through MCP.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// RuleOperators is the principal of a rule for the operator's own sessions
// (console login, stdio) rather than one agent token.
const RuleOperators = "operators"

// Why a rule did not let a call through (ClaimRuleUse).
var (
	ErrRuleInactive  = errors.New("the rule was revoked, has expired or was changed")
	ErrRuleExhausted = errors.New("the rule's hourly budget for this target is spent")
	ErrRuleBusy      = errors.New("a call under the rule is still running")
	ErrRuleStopped   = errors.New("the rule stopped after calls under it failed in a row")
)

// Rule is one version of a standing approval.
type Rule struct {
	ID      string `json:"id"` // "r_" + 12 hex characters; the same for every version
	Version int    `json:"version"`
	// Principal is whom it lets act: one agent token's principal id
	// ("agent:name/id"), or RuleOperators.
	Principal string `json:"principal"`
	Tool      string `json:"tool"`
	// Cluster is the one cluster Args allows (the cluster argument with one
	// value), else "" (none named, several, or any). Set by the store from
	// Args; the value given is ignored.
	Cluster string `json:"cluster,omitempty"`
	// Args maps each argument the call may pass to the values it may take
	// (numbers and booleans as JSON writes them); an argument not named here
	// must be absent from the call. "*" allows any value.
	Args map[string][]string `json:"args"`
	// Trigger, when set, is an alert kind that must be open for the call's
	// target (a guest, its node, a service) for the rule to apply.
	Trigger string `json:"trigger"`
	// PerTargetPerHour is how many calls it lets through per target in any
	// hour, across its versions.
	PerTargetPerHour int `json:"per_target_per_hour"`
	// MaxFailures stops the rule after that many calls under this version in
	// a row did not end ok (failed, unknown, interrupted).
	MaxFailures int        `json:"max_failures"`
	ExpiresAt   time.Time  `json:"expires_at"`
	Note        string     `json:"note"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	RevokedBy   string     `json:"revoked_by,omitempty"`
	// Current is false once a newer version exists.
	Current bool `json:"current"`
}

// Ref names this version in audit rows and events: "r_…/v2".
func (r Rule) Ref() string { return fmt.Sprintf("%s/v%d", r.ID, r.Version) }

// Active reports whether the rule can let calls through at now (its budget aside).
func (r Rule) Active(now time.Time) bool {
	return r.Current && r.RevokedAt == nil && now.Before(r.ExpiresAt)
}

// Applies reports whether the rule is for principal id (of an operator when
// operator is true).
func (r Rule) Applies(principal string, operator bool) bool {
	return r.Principal == principal || (operator && r.Principal == RuleOperators)
}

type ruleRecord struct {
	ID               string `gorm:"primaryKey"`
	Version          int    `gorm:"primaryKey;autoIncrement:false"`
	Principal        string `gorm:"not null;index"`
	Tool             string `gorm:"not null"`
	Args             string `gorm:"type:text;not null"`
	Trigger          string `gorm:"not null;default:''"`
	PerTargetPerHour int    `gorm:"not null"`
	MaxFailures      int    `gorm:"not null"`
	ExpiresNS        int64  `gorm:"not null"`
	Note             string `gorm:"type:text;not null;default:''"`
	CreatedBy        string `gorm:"not null"`
	CreatedNS        int64  `gorm:"not null"`
	RevokedNS        *int64
	RevokedBy        string `gorm:"not null;default:''"`
	Current          bool   `gorm:"not null;index"`
	Cluster          string `gorm:"not null;default:''"`
}

func (ruleRecord) TableName() string { return "rules" }

func (r ruleRecord) rule() Rule {
	out := Rule{ID: r.ID, Version: r.Version, Principal: r.Principal, Tool: r.Tool, Cluster: r.Cluster, Trigger: r.Trigger,
		PerTargetPerHour: r.PerTargetPerHour, MaxFailures: r.MaxFailures, ExpiresAt: fromNS(r.ExpiresNS),
		Note: r.Note, CreatedBy: r.CreatedBy, CreatedAt: fromNS(r.CreatedNS), RevokedAt: fromNSPtr(r.RevokedNS),
		RevokedBy: r.RevokedBy, Current: r.Current}
	if json.Unmarshal([]byte(r.Args), &out.Args) != nil || out.Args == nil {
		out.Args = map[string][]string{}
	}
	return out
}

// ruleUseRecord is one call let through by a rule. EndedNS is nil while the
// call runs; Outcome is then "".
type ruleUseRecord struct {
	ID        uint64 `gorm:"primaryKey;autoIncrement"`
	RuleID    string `gorm:"not null;index:idx_rule_uses_rule,priority:1"`
	Version   int    `gorm:"not null"`
	Principal string `gorm:"not null"`
	Target    string `gorm:"not null"`
	Node      string `gorm:"not null;default:''"`
	AuditID   uint64 `gorm:"not null;default:0"`
	StartedNS int64  `gorm:"not null;index:idx_rule_uses_rule,priority:2"`
	EndedNS   *int64
	Outcome   string `gorm:"not null;default:''"`
}

func (ruleUseRecord) TableName() string { return "rule_uses" }

func newRuleID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate rule id: %w", err)
	}
	return "r_" + hex.EncodeToString(b[:]), nil
}

// checkRule names what is wrong with a rule before it is stored.
func checkRule(r *Rule, now time.Time) error {
	var bad []string
	if r.Principal == "" {
		bad = append(bad, "whom it is for (an agent token, or operators) is missing")
	}
	if r.Tool == "" {
		bad = append(bad, "the tool is missing")
	}
	if r.PerTargetPerHour < 1 {
		bad = append(bad, "the budget per target per hour must be at least 1")
	}
	if r.MaxFailures < 1 {
		bad = append(bad, "the number of failures in a row that stops it must be at least 1")
	}
	if !r.ExpiresAt.After(now) {
		bad = append(bad, "the expiry must be in the future")
	}
	for name, values := range r.Args {
		if name == "" || len(values) == 0 {
			bad = append(bad, fmt.Sprintf("argument %q needs at least one allowed value", name))
		}
	}
	// What a call is matched against must be stored as given (text.go), or
	// the rule would let through something else than it says.
	for _, f := range []struct{ what, v string }{{"whom it is for", r.Principal}, {"the tool", r.Tool}, {"the trigger", r.Trigger}} {
		if !isCleanText(f.v) {
			bad = append(bad, f.what+" has a NUL byte or bytes that are not UTF-8")
		}
	}
	for name, values := range r.Args {
		if !isCleanText(name) || slices.ContainsFunc(values, func(v string) bool { return !isCleanText(v) }) {
			bad = append(bad, fmt.Sprintf("argument %q has a NUL byte or bytes that are not UTF-8", name))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("rule not stored: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (s *Store) ruleRecordOf(r *Rule) (ruleRecord, error) {
	args, err := json.Marshal(r.Args)
	if err != nil {
		return ruleRecord{}, err
	}
	if r.Args == nil {
		args = []byte("{}")
	}
	return ruleRecord{ID: r.ID, Version: r.Version, Principal: r.Principal, Tool: r.Tool, Cluster: ruleCluster(r.Args), Args: string(args),
		Trigger: r.Trigger, PerTargetPerHour: r.PerTargetPerHour, MaxFailures: r.MaxFailures,
		ExpiresNS: toNS(r.ExpiresAt), Note: cleanText(r.Note), CreatedBy: cleanText(r.CreatedBy), CreatedNS: toNS(r.CreatedAt), Current: true}, nil
}

// CreateRule stores version 1 of a new rule and sets its ID, Version,
// CreatedAt and Current.
func (s *Store) CreateRule(ctx context.Context, r *Rule) error {
	now := s.now()
	if err := checkRule(r, now); err != nil {
		return err
	}
	id, err := newRuleID()
	if err != nil {
		return err
	}
	r.ID, r.Version, r.CreatedAt, r.RevokedAt, r.RevokedBy = id, 1, now, nil, ""
	rec, err := s.ruleRecordOf(r)
	if err != nil {
		return fmt.Errorf("create rule: %w", err)
	}
	if err := s.db.WithContext(ctx).Create(&rec).Error; err != nil {
		return fmt.Errorf("create rule: %w", err)
	}
	*r = rec.rule()
	return nil
}

// UpdateRule makes next the new version of rule id: the current version stops
// applying at once, and the budget spent under earlier versions still counts.
// A revoked rule cannot be changed (create a new one).
func (s *Store) UpdateRule(ctx context.Context, id string, next Rule) (*Rule, error) {
	now := s.now()
	if err := checkRule(&next, now); err != nil {
		return nil, err
	}
	var out Rule
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockRule(tx, id); err != nil {
			return err
		}
		cur, err := currentRule(tx, id)
		if err != nil {
			return err
		}
		if cur.RevokedNS != nil {
			return fmt.Errorf("rule %s was revoked; create a new one", id)
		}
		if err := tx.Model(&ruleRecord{}).Where("id = ? AND version = ?", id, cur.Version).Update("current", false).Error; err != nil {
			return err
		}
		next.ID, next.Version, next.CreatedAt = id, cur.Version+1, now
		rec, err := s.ruleRecordOf(&next)
		if err != nil {
			return err
		}
		if err := tx.Create(&rec).Error; err != nil {
			return err
		}
		out = rec.rule()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("change rule %s: %w", id, err)
	}
	return &out, nil
}

// RevokeRule revokes rule id at once; it lets nothing through afterwards.
func (s *Store) RevokeRule(ctx context.Context, id, by string) (*Rule, error) {
	now := s.now()
	var out Rule
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockRule(tx, id); err != nil {
			return err
		}
		cur, err := currentRule(tx, id)
		if err != nil {
			return err
		}
		if cur.RevokedNS != nil {
			return fmt.Errorf("it was already revoked by %s", cur.RevokedBy)
		}
		ns, by := now.UnixNano(), cleanText(by)
		if err := tx.Model(&ruleRecord{}).Where("id = ? AND version = ?", id, cur.Version).
			Updates(map[string]any{"revoked_ns": ns, "revoked_by": by}).Error; err != nil {
			return err
		}
		cur.RevokedNS, cur.RevokedBy = &ns, by
		out = cur.rule()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke rule %s: %w", id, err)
	}
	return &out, nil
}

// lockRule makes the transactions that read a rule's state and then write on
// it (claim a use, change, revoke) take turns across processes. The rows of
// every version are locked, not only the current one: a claim waiting on the
// current row while a change commits would find that row no longer current,
// lock nothing and go on beside the next claim; locking them all, it goes on
// after the change, reads the new version and is refused as inactive.
func (s *Store) lockRule(tx *gorm.DB, id string) error {
	if err := s.d.lockRows(tx, "SELECT version FROM rules WHERE id = ?", id); err != nil {
		return fmt.Errorf("lock rule %s: %w", id, err)
	}
	return nil
}

func currentRule(db *gorm.DB, id string) (ruleRecord, error) {
	var rec ruleRecord
	err := db.Where("id = ? AND current = ?", id, true).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return rec, ErrNotFound
	}
	return rec, err
}

// GetRule returns the current version of rule id, or ErrNotFound.
func (s *Store) GetRule(ctx context.Context, id string) (*Rule, error) {
	rec, err := currentRule(s.db.WithContext(ctx), id)
	if err != nil {
		return nil, fmt.Errorf("get rule %s: %w", id, err)
	}
	r := rec.rule()
	return &r, nil
}

// RuleVersions returns every version of rule id, oldest first.
func (s *Store) RuleVersions(ctx context.Context, id string) ([]Rule, error) {
	var recs []ruleRecord
	if err := s.db.WithContext(ctx).Where("id = ?", id).Order("version").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("rule %s versions: %w", id, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	out := make([]Rule, len(recs))
	for i, r := range recs {
		out[i] = r.rule()
	}
	return out, nil
}

// ListRules returns the current version of every rule, newest first; with
// activeOnly, only those not revoked and not expired at now.
func (s *Store) ListRules(ctx context.Context, activeOnly bool, now time.Time) ([]Rule, error) {
	q := s.db.WithContext(ctx).Where("current = ?", true)
	if activeOnly {
		q = q.Where("revoked_ns IS NULL AND expires_ns > ?", now.UnixNano())
	}
	var recs []ruleRecord
	if err := q.Order("created_ns DESC, " + s.d.byteOrder("id")).Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := make([]Rule, len(recs))
	for i, r := range recs {
		out[i] = r.rule()
	}
	return out, nil
}

// RuleSpend is what a rule has used at a moment.
type RuleSpend struct {
	// UsesLastHour counts calls let through in the last hour, by target.
	UsesLastHour map[string]int `json:"uses_last_hour"`
	// FailuresInARow counts the latest calls under this version that did not
	// end ok; Stopped is true when that reached MaxFailures.
	FailuresInARow int        `json:"failures_in_a_row"`
	Stopped        bool       `json:"stopped"`
	Running        int        `json:"running"`
	LastUsed       *time.Time `json:"last_used,omitempty"`
	TotalUses      int        `json:"total_uses"`
}

// UsesLeft is what the hourly budget still allows for target.
func (sp RuleSpend) UsesLeft(r Rule, target string) int {
	return max(0, r.PerTargetPerHour-sp.UsesLastHour[target])
}

// ruleSpend reads a rule's spend at now. A use still open after staleAfter
// counts as ended without an answer (unknown): Jarvis stopped while it ran.
// It reads only what the answer needs (the last hour, open uses, the latest
// of this version), so a rule used for months costs the same as a new one.
func ruleSpend(db *gorm.DB, r Rule, now time.Time, staleAfter time.Duration) (RuleSpend, error) {
	sp := RuleSpend{UsesLastHour: map[string]int{}}
	hourAgo, stale := now.Add(-time.Hour).UnixNano(), now.Add(-staleAfter).UnixNano()
	// One range of the (rule_id, started_ns) index: the hour's uses and
	// those that may still run (an older open use is stale, counted below).
	var recent []ruleUseRecord
	if err := db.Where("rule_id = ? AND started_ns > ?", r.ID, min(hourAgo, stale)).Find(&recent).Error; err != nil {
		return sp, err
	}
	for _, u := range recent {
		if u.StartedNS > hourAgo {
			sp.UsesLastHour[u.Target]++
		}
		if u.EndedNS == nil && u.StartedNS > stale {
			sp.Running++
		}
	}
	var totals struct {
		N    int
		Last *int64
	}
	if err := db.Model(&ruleUseRecord{}).Select("COUNT(*) AS n, MAX(started_ns) AS last").Where("rule_id = ?", r.ID).Scan(&totals).Error; err != nil {
		return sp, err
	}
	sp.TotalUses = totals.N
	if totals.Last != nil {
		t := fromNS(*totals.Last)
		sp.LastUsed = &t
	}
	// The failure streak: the latest uses of this version, newest first,
	// skipping those still running.
	var latest []ruleUseRecord
	if err := db.Where("rule_id = ? AND version = ?", r.ID, r.Version).Order("id DESC").Limit(r.MaxFailures + sp.Running).Find(&latest).Error; err != nil {
		return sp, err
	}
	for _, u := range latest {
		if u.EndedNS == nil && u.StartedNS > stale {
			continue
		}
		if u.EndedNS != nil && u.Outcome == OutcomeOK {
			break
		}
		sp.FailuresInARow++
	}
	sp.Stopped = sp.FailuresInARow >= r.MaxFailures
	return sp, nil
}

// SpendOf reads what rule r has used at now (the console, jarvis rule list).
func (s *Store) SpendOf(ctx context.Context, r Rule, now time.Time, staleAfter time.Duration) (RuleSpend, error) {
	sp, err := ruleSpend(s.db.WithContext(ctx), r, now, staleAfter)
	if err != nil {
		return sp, fmt.Errorf("rule %s spend: %w", r.ID, err)
	}
	return sp, nil
}

// RuleClaim asks to let one call through under a rule.
type RuleClaim struct {
	Rule      Rule // the version the caller matched the call against
	Principal string
	Target    string // the subject acted on, e.g. guest/101
	Node      string
	Now       time.Time
	// StaleAfter is how long a call may run (JARVIS_EXEC_TIMEOUT and a
	// margin): a use open longer is one Jarvis stopped during.
	StaleAfter time.Duration
}

// ClaimRuleUse records that one call runs under the rule, if the rule still
// allows it: the version matched is still current and active, no call under
// it is running (so it never acts on more than one node at once), the hourly
// budget for the target is not spent, and it has not stopped after failures.
// It is one transaction, so concurrent callers in any process cannot both
// take the last use. It returns the use's id and the spend after it; when it
// fails, the spend as it stands (ErrRuleInactive, ErrRuleBusy,
// ErrRuleExhausted, ErrRuleStopped).
func (s *Store) ClaimRuleUse(ctx context.Context, c RuleClaim) (uint64, RuleSpend, error) {
	var id uint64
	var sp RuleSpend
	// As stored (text.go), so the budget counts the target's earlier uses.
	c.Principal, c.Target, c.Node = cleanText(c.Principal), cleanText(c.Target), cleanText(c.Node)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockRule(tx, c.Rule.ID); err != nil {
			return err
		}
		cur, err := currentRule(tx, c.Rule.ID)
		if err != nil {
			return err
		}
		r := cur.rule()
		if r.Version != c.Rule.Version || !r.Active(c.Now) {
			return ErrRuleInactive
		}
		if sp, err = ruleSpend(tx, r, c.Now, c.StaleAfter); err != nil {
			return err
		}
		switch {
		case sp.Stopped:
			return ErrRuleStopped
		case sp.Running > 0:
			return ErrRuleBusy
		case sp.UsesLastHour[c.Target] >= r.PerTargetPerHour:
			return ErrRuleExhausted
		}
		use := ruleUseRecord{RuleID: r.ID, Version: r.Version, Principal: c.Principal, Target: c.Target, Node: c.Node, StartedNS: c.Now.UnixNano()}
		if err := tx.Create(&use).Error; err != nil {
			return err
		}
		id = use.ID
		sp.UsesLastHour[c.Target]++
		sp.Running++
		sp.TotalUses++
		return nil
	})
	if err != nil {
		return 0, sp, fmt.Errorf("rule %s: %w", c.Rule.Ref(), err)
	}
	return id, sp, nil
}

// EndRuleUse records how a call let through by a rule ended (ok, failed,
// unknown) and its audit row, and returns the rule's spend afterwards.
func (s *Store) EndRuleUse(ctx context.Context, r Rule, useID uint64, outcome string, auditID uint64, staleAfter time.Duration) (RuleSpend, error) {
	now := s.now()
	db := s.db.WithContext(ctx)
	err := db.Model(&ruleUseRecord{}).Where("id = ? AND ended_ns IS NULL", useID).
		Updates(map[string]any{"ended_ns": now.UnixNano(), "outcome": outcome, "audit_id": auditID}).Error
	if err != nil {
		return RuleSpend{}, fmt.Errorf("end use %d of rule %s: %w", useID, r.Ref(), err)
	}
	return s.SpendOf(ctx, r, now, staleAfter)
}

// RuleValue is how a call's argument value is compared with a rule's allowed
// values: strings as they are, numbers and booleans as JSON writes them.
func RuleValue(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64, int, int64, bool:
		b, _ := json.Marshal(x)
		return string(b), true
	}
	return "", false
}

// ArgsAllowed reports whether args fit the rule's argument constraints, and
// if not, the first argument that does not, in words. Arguments in ignore
// (approval_id) are not the call's own.
func (r Rule) ArgsAllowed(args map[string]any, ignore ...string) (bool, string) {
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(ignore, name) {
			continue
		}
		allowed, named := r.Args[name]
		if !named {
			return false, fmt.Sprintf("it does not allow the argument %s", name)
		}
		if slices.Contains(allowed, "*") {
			continue
		}
		v, ok := RuleValue(args[name])
		if !ok || !slices.Contains(allowed, v) {
			return false, fmt.Sprintf("it allows %s only as %s", name, strings.Join(allowed, ", "))
		}
	}
	// A constrained argument left out would take the tool's default, which
	// the rule did not name.
	for name, allowed := range r.Args {
		if _, given := args[name]; !given && !slices.Contains(allowed, "*") {
			return false, fmt.Sprintf("it requires the argument %s (one of %s)", name, strings.Join(allowed, ", "))
		}
	}
	return true, ""
}
