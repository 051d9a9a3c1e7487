package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRuleArgsAllowed(t *testing.T) {
	r := Rule{Args: map[string][]string{"vmid": {"101", "102"}, "node": {"*"}, "service": {"nginx"}}}
	num := func(s string) any { return json.Number(s) }
	cases := []struct {
		name string
		args map[string]any
		ok   bool
	}{
		{"allowed values", map[string]any{"vmid": num("101"), "service": "nginx"}, true},
		{"any node", map[string]any{"vmid": num("102"), "service": "nginx", "node": "pve"}, true},
		{"approval_id is not the call's", map[string]any{"vmid": num("101"), "service": "nginx", "approval_id": "apr_x"}, true},
		{"value outside", map[string]any{"vmid": num("103"), "service": "nginx"}, false},
		{"number written as string still compared as text", map[string]any{"vmid": "101", "service": "nginx"}, true},
		{"argument not named", map[string]any{"vmid": num("101"), "service": "nginx", "force": true}, false},
		{"constrained argument left out", map[string]any{"vmid": num("101")}, false},
		{"object value never matches", map[string]any{"vmid": map[string]any{"a": 1}, "service": "nginx"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, why := r.ArgsAllowed(c.args, "approval_id")
			if ok != c.ok {
				t.Fatalf("ArgsAllowed = %v (%s), want %v", ok, why, c.ok)
			}
			if !ok && why == "" {
				t.Fatal("a refusal must say why")
			}
		})
	}
}

// A rule's budget, its one-call-at-a-time limit, its stop after failures in a
// row, its versions and its revocation, as ClaimRuleUse enforces them.
func TestRuleClaims(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	r := Rule{Principal: "agent:night/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}},
		Trigger: AlertGuestStoppedUnexpectedly, PerTargetPerHour: 2, MaxFailures: 2, ExpiresAt: now.Add(24 * time.Hour), CreatedBy: "operator"}
	if err := s.CreateRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || !r.Current || len(r.ID) != len("r_")+12 {
		t.Fatalf("created %+v", r)
	}
	claim := func(rule Rule, target string) (uint64, error) {
		id, _, err := s.ClaimRuleUse(ctx, RuleClaim{Rule: rule, Principal: rule.Principal, Target: target, Node: "pve", Now: now, StaleAfter: 6 * time.Minute})
		return id, err
	}
	end := func(rule Rule, id uint64, outcome string) RuleSpend {
		sp, err := s.EndRuleUse(ctx, rule, id, outcome, 1, 6*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}

	u1, err := claim(r, "guest/101")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claim(r, "guest/101"); !errors.Is(err, ErrRuleBusy) {
		t.Fatalf("second claim while the first runs: %v, want ErrRuleBusy", err)
	}
	end(r, u1, OutcomeOK)
	now = now.Add(time.Minute)
	u2, err := claim(r, "guest/101")
	if err != nil {
		t.Fatal(err)
	}
	if sp := end(r, u2, OutcomeOK); sp.UsesLeft(r, "guest/101") != 0 || sp.UsesLastHour["guest/101"] != 2 {
		t.Fatalf("spend after two uses: %+v", sp)
	}
	if _, err := claim(r, "guest/101"); !errors.Is(err, ErrRuleExhausted) {
		t.Fatalf("third use within the hour: %v, want ErrRuleExhausted", err)
	}
	// Another target has its own budget. This use is left running: once
	// StaleAfter has passed it counts as ended without an answer (unknown).
	if _, err := claim(r, "guest/102"); err != nil {
		t.Fatalf("another target: %v", err)
	}
	now = now.Add(61 * time.Minute)
	u4, err := claim(r, "guest/101")
	if err != nil {
		t.Fatalf("an hour later (the stale use on 102 no longer blocks): %v", err)
	}
	if sp := end(r, u4, OutcomeFailed); !sp.Stopped || sp.FailuresInARow != 2 {
		t.Fatalf("a stale use and a failure in a row must stop the rule: %+v", sp)
	}
	if _, err := claim(r, "guest/101"); !errors.Is(err, ErrRuleStopped) {
		t.Fatalf("claim on a stopped rule: %v, want ErrRuleStopped", err)
	}

	// A new version starts with no failures but keeps the hourly spend, and
	// the old version matched by a caller no longer counts.
	next := r
	next.PerTargetPerHour = 2
	v2, err := s.UpdateRule(ctx, r.ID, next)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.ID != r.ID {
		t.Fatalf("new version %+v", v2)
	}
	if _, err := claim(r, "guest/101"); !errors.Is(err, ErrRuleInactive) {
		t.Fatalf("claim with the old version: %v, want ErrRuleInactive", err)
	}
	u5, err := claim(*v2, "guest/101")
	if err != nil {
		t.Fatalf("claim under v2: %v", err)
	}
	end(*v2, u5, OutcomeOK)
	if _, err := claim(*v2, "guest/101"); !errors.Is(err, ErrRuleExhausted) {
		t.Fatalf("the budget spans versions: %v, want ErrRuleExhausted", err)
	}
	versions, err := s.RuleVersions(ctx, r.ID)
	if err != nil || len(versions) != 2 || versions[0].Current || !versions[1].Current {
		t.Fatalf("versions %+v, %v", versions, err)
	}

	// Revoked: nothing more, and it cannot be changed or revoked again.
	if _, err := s.RevokeRule(ctx, r.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := claim(*v2, "guest/103"); !errors.Is(err, ErrRuleInactive) {
		t.Fatalf("claim after revocation: %v, want ErrRuleInactive", err)
	}
	if _, err := s.RevokeRule(ctx, r.ID, "operator"); err == nil {
		t.Fatal("revoking twice must say it was already revoked")
	}
	if _, err := s.UpdateRule(ctx, r.ID, next); err == nil {
		t.Fatal("a revoked rule must not get a new version")
	}
	active, err := s.ListRules(ctx, true, now)
	if err != nil || len(active) != 0 {
		t.Fatalf("active rules after revocation: %+v, %v", active, err)
	}
	all, err := s.ListRules(ctx, false, now)
	if err != nil || len(all) != 1 || all[0].RevokedAt == nil {
		t.Fatalf("all rules: %+v, %v", all, err)
	}
}

func TestRuleExpiresAndBadRulesAreRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	now := time.Now()
	for _, bad := range []Rule{
		{Tool: "start_vm", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: now.Add(time.Hour)},
		{Principal: "operators", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: now.Add(time.Hour)},
		{Principal: "operators", Tool: "start_vm", MaxFailures: 1, ExpiresAt: now.Add(time.Hour)},
		{Principal: "operators", Tool: "start_vm", PerTargetPerHour: 1, ExpiresAt: now.Add(time.Hour)},
		{Principal: "operators", Tool: "start_vm", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: now.Add(-time.Second)},
		{Principal: "operators", Tool: "start_vm", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: now.Add(time.Hour), Args: map[string][]string{"vmid": {}}},
	} {
		if err := s.CreateRule(ctx, &bad); err == nil {
			t.Errorf("rule %+v was stored", bad)
		}
	}
	r := Rule{Principal: RuleOperators, Tool: "start_vm", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Applies("operator", true) || r.Applies("agent:x/1", false) {
		t.Fatal("an operators rule applies to operators only")
	}
	_, _, err := s.ClaimRuleUse(ctx, RuleClaim{Rule: r, Target: "guest/101", Now: now.Add(2 * time.Hour), StaleAfter: time.Minute})
	if !errors.Is(err, ErrRuleInactive) {
		t.Fatalf("claim after expiry: %v, want ErrRuleInactive", err)
	}
}

// What a standing approval adds to a RED call it lets through: one claim and
// one end, each a transaction, with a year of uses behind it.
func BenchmarkRuleClaimAndEnd(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, _ string) {
		ctx := context.Background()
		now := time.Now()
		r := Rule{Principal: "agent:night/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"*"}},
			PerTargetPerHour: 1 << 30, MaxFailures: 3, ExpiresAt: now.Add(90 * 24 * time.Hour), CreatedBy: "operator"}
		if err := s.CreateRule(ctx, &r); err != nil {
			b.Fatal(err)
		}
		// Old uses, ended ok: the spend must not read them all.
		for i := range 1000 {
			id, _, err := s.ClaimRuleUse(ctx, RuleClaim{Rule: r, Target: fmt.Sprintf("guest/%d", 100+i%50), Now: now.Add(-time.Duration(1000-i) * time.Hour), StaleAfter: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.EndRuleUse(ctx, r, id, OutcomeOK, 1, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		// A call a minute, as a busy rule might see: the hour holds 60 uses.
		clock := now
		s.now = func() time.Time { return clock }
		for b.Loop() {
			clock = clock.Add(time.Minute)
			id, _, err := s.ClaimRuleUse(ctx, RuleClaim{Rule: r, Target: "guest/101", Now: clock, StaleAfter: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.EndRuleUse(ctx, r, id, OutcomeOK, 1, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
