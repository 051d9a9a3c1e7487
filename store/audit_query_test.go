package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// seedSearch writes a small log with every shape of call, one minute apart from
// base, and returns the ids of the calls' first rows by name:
//
//	r1  read   operator       get_vms      green  allow  ok
//	c1  call   agent:a/tok_1  stop_vm      red    allow  ok       (begin, end)
//	c2  call   agent:a/tok_2  start_vm     yellow allow  failed   (begin, end)
//	x1  call   agent:b/tok_3  stop_vm      red    needs_approval refused
//	c3  call   agent:a%_/tok  start_vm     yellow allow  running  (begin only)
//	r2  read   agent:b/tok_3  get_vms      green  allow  failed
//	old call   operator       start_vm     yellow allow  "error"  (before the three outcomes)
func seedSearch(t *testing.T, s *Store, base time.Time) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	clock := base
	s.now = func() time.Time { return clock }
	s.dbClock = false // the rows take this clock, not the database's
	tick := func() { clock = clock.Add(time.Minute) }
	ids := map[string]uint64{}
	read := func(name, principal, tool, status, errText string) {
		id, err := s.AuditRead(ctx, AuditEntry{Principal: principal, Tool: tool, Args: "{}", Tier: "green", Decision: "allow", Plan: "List VMs"},
			AuditOutcome{Status: status, Error: errText, Duration: 12 * time.Millisecond}, nil)
		if err != nil {
			t.Fatalf("AuditRead %s: %v", name, err)
		}
		ids[name] = id
		tick()
	}
	call := func(name, principal, tool, tier, decision, plan string, end *AuditOutcome) {
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: principal, Tool: tool, Args: `{"vmid":101}`, Tier: tier, Decision: decision, Plan: plan})
		if err != nil {
			t.Fatalf("AuditBegin %s: %v", name, err)
		}
		ids[name] = id
		tick()
		if end != nil {
			if err := s.AuditEnd(ctx, id, *end); err != nil {
				t.Fatalf("AuditEnd %s: %v", name, err)
			}
			tick()
		}
	}
	call("old", "operator", "start_vm", "yellow", "allow", "Start VM 101", &AuditOutcome{Status: "error", Error: "old failure"})
	read("r1", "operator", "get_vms", OutcomeOK, "")
	call("c1", "agent:a/tok_1", "stop_vm", "red", "allow", "Hard stop of VM 101", &AuditOutcome{Status: OutcomeOK, UPID: "UPID:pve:1", Duration: 2 * time.Second})
	call("c2", "agent:a/tok_2", "start_vm", "yellow", "allow", "Start VM 101", &AuditOutcome{Status: OutcomeFailed, Error: "VM is locked"})
	call("x1", "agent:b/tok_3", "stop_vm", "red", "needs_approval", "Hard stop of VM 101", &AuditOutcome{Status: OutcomeRefused, Error: "waiting for a person"})
	call("c3", "agent:a%_/tok", "start_vm", "yellow", "allow", "Start VM 101", nil)
	read("r2", "agent:b/tok_3", "get_vms", OutcomeFailed, "cluster unreachable")
	return ids
}

func TestAuditSearchFilters(t *testing.T) {
	s, _ := openTemp(t)
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	ids := seedSearch(t, s, base)
	// Times: old 8:00, r1 8:02, c1 8:03, c2 8:05, x1 8:07, c3 8:09, r2 8:10.
	at := func(h, m int) time.Time { return time.Date(2026, 11, 26, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name string
		f    AuditFilter
		want []string // newest first
	}{
		{"everything", AuditFilter{}, []string{"r2", "c3", "x1", "c2", "c1", "r1", "old"}},
		{"tool", AuditFilter{Tool: "stop_vm"}, []string{"x1", "c1"}},
		{"tool nobody called", AuditFilter{Tool: "delete_vm"}, nil},
		{"principal exact", AuditFilter{Principal: "agent:b/tok_3"}, []string{"r2", "x1"}},
		{"principal exact is not a prefix", AuditFilter{Principal: "agent:b"}, nil},
		{"principal prefix", AuditFilter{Principal: "agent:a*"}, []string{"c3", "c2", "c1"}},
		// LIKE's wildcards in the prefix match themselves only.
		{"principal prefix with % and _", AuditFilter{Principal: "agent:a%_*"}, []string{"c3"}},
		{"principal prefix % is literal", AuditFilter{Principal: "agent:%*"}, nil},
		{"tier", AuditFilter{Tier: "red"}, []string{"x1", "c1"}},
		{"decision", AuditFilter{Decision: "needs_approval"}, []string{"x1"}},
		{"outcome ok: reads and ended calls", AuditFilter{Outcome: OutcomeOK}, []string{"c1", "r1"}},
		{"outcome failed includes the old error", AuditFilter{Outcome: OutcomeFailed}, []string{"r2", "c2", "old"}},
		{"outcome refused", AuditFilter{Outcome: OutcomeRefused}, []string{"x1"}},
		{"outcome running", AuditFilter{Outcome: OutcomeRunning}, []string{"c3"}},
		{"outcome interrupted", AuditFilter{Outcome: OutcomeInterrupted}, nil},
		{"since", AuditFilter{Since: at(8, 7)}, []string{"r2", "c3", "x1"}},
		{"until is inclusive", AuditFilter{Until: at(8, 3)}, []string{"c1", "r1", "old"}},
		{"since and until", AuditFilter{Since: at(8, 3), Until: at(8, 7)}, []string{"x1", "c2", "c1"}},
		{"before id", AuditFilter{BeforeID: ids["c2"]}, []string{"c1", "r1", "old"}},
		{"limit", AuditFilter{Limit: 2}, []string{"r2", "c3"}},
		{"combined", AuditFilter{Tool: "start_vm", Principal: "agent:a*", Outcome: OutcomeFailed}, []string{"c2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.AuditSearch(context.Background(), tt.f)
			if err != nil {
				t.Fatalf("AuditSearch(%+v): %v", tt.f, err)
			}
			var got []string
			for _, c := range page.Calls {
				got = append(got, nameOf(ids, c.ID))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("AuditSearch(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func nameOf(ids map[string]uint64, id uint64) string {
	for k, v := range ids {
		if v == id {
			return k
		}
	}
	return fmt.Sprintf("row %d", id)
}

// A call reads as one line: the begin row's plan and arguments with the end
// row's outcome; a read is its own row.
func TestAuditSearchJoinsBeginAndEnd(t *testing.T) {
	s, _ := openTemp(t)
	ids := seedSearch(t, s, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	page, err := s.AuditSearch(context.Background(), AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]AuditCall{}
	for _, c := range page.Calls {
		byName[nameOf(ids, c.ID)] = c
	}
	c1 := byName["c1"]
	if c1.Kind != "call" || c1.EndID != ids["c1"]+1 || c1.Outcome != OutcomeOK || c1.Plan != "Hard stop of VM 101" ||
		c1.UPID != "UPID:pve:1" || c1.DurationMS != 2000 || c1.Args != `{"vmid":101}` || c1.EndTime == nil || !c1.EndTime.After(c1.Time) {
		t.Errorf("c1 = %+v, want the begin row's plan and args with the end row's ok, UPID and duration", c1)
	}
	if c2 := byName["c2"]; c2.Outcome != OutcomeFailed || c2.Error != "VM is locked" {
		t.Errorf("c2 = %+v, want failed with the end row's error", c2)
	}
	if c3 := byName["c3"]; c3.Outcome != OutcomeRunning || c3.EndID != 0 || c3.EndTime != nil {
		t.Errorf("c3 = %+v, want running without an end row", c3)
	}
	if r2 := byName["r2"]; r2.Kind != "read" || r2.Outcome != OutcomeFailed || r2.Error != "cluster unreachable" || r2.Plan != "List VMs" || r2.DurationMS != 12 {
		t.Errorf("r2 = %+v, want the read row as it is", r2)
	}
	// No end row is listed on its own.
	for _, c := range page.Calls {
		if nameOf(ids, c.ID) == fmt.Sprintf("row %d", c.ID) {
			t.Errorf("row %d (%s) is listed but is no call's first row", c.ID, c.Kind)
		}
	}
}

// Paging by id visits every call once, newest first, and says when it is done.
func TestAuditSearchPages(t *testing.T) {
	s, _ := openTemp(t)
	seedCalls(t, s, 7) // 7 calls, 14 rows
	var seen []uint64
	f := AuditFilter{Limit: 3}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page, err := s.AuditSearch(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Calls {
			seen = append(seen, c.ID)
		}
		if !page.More {
			if page.NextBeforeID != 0 {
				t.Errorf("last page has next_before_id %d", page.NextBeforeID)
			}
			break
		}
		if page.NextBeforeID != page.Calls[len(page.Calls)-1].ID {
			t.Errorf("next_before_id = %d, want the last call's id %d", page.NextBeforeID, page.Calls[len(page.Calls)-1].ID)
		}
		f.BeforeID = page.NextBeforeID
	}
	want := []uint64{13, 11, 9, 7, 5, 3, 1}
	if !slices.Equal(seen, want) {
		t.Errorf("pages gave %v, want %v", seen, want)
	}
	// Exactly a full page: More is false, no empty page after it.
	page, err := s.AuditSearch(context.Background(), AuditFilter{Limit: 7})
	if err != nil || page.More || len(page.Calls) != 7 {
		t.Errorf("limit 7 of 7 calls = %d calls, more %v, %v; want 7, false", len(page.Calls), page.More, err)
	}
}

func TestAuditSearchRefusesBadFilters(t *testing.T) {
	s, _ := openTemp(t)
	now := time.Now()
	for _, f := range []AuditFilter{
		{Limit: -1},
		{Limit: MaxSearchLimit + 1},
		{Outcome: "error"},
		{Outcome: "OK"},
		{Principal: "*"},
		{Since: now, Until: now.Add(-time.Hour)},
		{BeforeID: 1 << 63},
	} {
		if _, err := s.AuditSearch(context.Background(), f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("AuditSearch(%+v) = %v, want ErrInvalidFilter", f, err)
		}
	}
	// A value that looks like SQL is a value like any other.
	page, err := s.AuditSearch(context.Background(), AuditFilter{Tool: "x' OR '1'='1", Principal: "'; DROP TABLE audit_log; --"})
	if err != nil || len(page.Calls) != 0 {
		t.Errorf("quoting search = %+v, %v; want nothing found", page, err)
	}
	if err := s.AuditWritable(context.Background()); err != nil {
		t.Errorf("the log after the quoting search: %v", err)
	}
}

func TestApprovalHistory(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	mk := func(i int, tool string, ttl time.Duration) *Approval {
		a := &Approval{Principal: fmt.Sprintf("agent:a/tok_%d", i), Tool: tool, Args: "{}", Plan: fmt.Sprintf("plan %d", i), Tier: "red",
			CreatedAt: base.Add(time.Duration(i) * time.Minute), ExpiresAt: base.Add(time.Duration(i)*time.Minute + ttl)}
		if err := s.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	pending := mk(0, "stop_vm", time.Hour)
	approved := mk(1, "stop_vm", time.Hour)
	denied := mk(2, "restart_vm", time.Hour)
	expired := mk(3, "stop_vm", time.Minute) // 8:04
	consumed := mk(4, "shutdown_vm", time.Hour)
	decide := func(a *Approval, yes bool, at time.Time) {
		if _, err := s.DecideApproval(ctx, a.ID, yes, "operator", at); err != nil {
			t.Fatal(err)
		}
	}
	decide(approved, true, base.Add(2*time.Minute))
	decide(denied, false, base.Add(3*time.Minute))
	decide(consumed, true, base.Add(5*time.Minute))
	if _, err := s.ConsumeApproval(ctx, consumed.ID, Binding{Principal: consumed.Principal, Tool: consumed.Tool, Args: consumed.Args, Plan: consumed.Plan}, base.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.ExpireApprovals(ctx, base.Add(7*time.Minute)); err != nil || len(gone) != 1 || gone[0].ID != expired.ID {
		t.Fatalf("ExpireApprovals = %v, %v; want only %s", gone, err, expired.ID)
	}
	if p, err := s.GetApproval(ctx, pending.ID); err != nil || p.Status != ApprovalPending {
		t.Fatalf("the pending approval = %+v, %v", p, err)
	}

	ids := func(p ApprovalPage) []string {
		var out []string
		for _, a := range p.Approvals {
			out = append(out, a.ID)
		}
		return out
	}
	all, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{consumed.ID, expired.ID, denied.ID, approved.ID}; !slices.Equal(ids(all), want) {
		t.Errorf("history = %v, want the decided ones newest first %v (no pending one)", ids(all), want)
	}
	if d := all.Approvals[2]; d.Status != ApprovalDenied || d.DecidedBy != "operator" || d.DecidedAt == nil || d.Plan != "plan 2" {
		t.Errorf("denied approval in the history = %+v, want who decided and when", d)
	}
	for status, want := range map[string][]string{
		ApprovalDenied: {denied.ID}, ApprovalExpired: {expired.ID}, ApprovalConsumed: {consumed.ID}, ApprovalApproved: {approved.ID},
	} {
		p, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Status: status})
		if err != nil || !slices.Equal(ids(p), want) {
			t.Errorf("history of %s = %v, %v; want %v", status, ids(p), err, want)
		}
	}
	// Pages of two: the cursor is the last id of a page.
	first, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Limit: 2})
	if err != nil || !first.More || first.NextBefore != expired.ID || !slices.Equal(ids(first), []string{consumed.ID, expired.ID}) {
		t.Fatalf("first page = %+v, %v", first, err)
	}
	second, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Limit: 2, Before: first.NextBefore})
	if err != nil || second.More || !slices.Equal(ids(second), []string{denied.ID, approved.ID}) {
		t.Errorf("second page = %+v, %v", second, err)
	}

	for _, f := range []ApprovalHistoryFilter{{Status: ApprovalPending}, {Status: "nope"}, {Limit: -1}, {Limit: MaxSearchLimit + 1}, {Before: "apr_XYZ"}} {
		if _, err := s.ApprovalHistory(ctx, f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ApprovalHistory(%+v) = %v, want ErrInvalidFilter", f, err)
		}
	}
	if _, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Before: "apr_00000000deadbeef"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ApprovalHistory before an unknown id = %v, want ErrNotFound", err)
	}
}

// A principal prefix matches ASCII letters in any case and every other
// character exactly, on both engines: SQLite's LIKE has always matched so,
// PostgreSQL's LIKE would not fold case and its ILIKE would fold É too.
func TestAuditSearchPrincipalPrefixCase(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	ids := map[string]uint64{}
	for _, p := range []string{"agent:night/tok_1", "Agent:Day/tok_2", "émile", "Émile"} {
		id, err := s.AuditRead(ctx, AuditEntry{Principal: p, Tool: "get_vms", Args: "{}"}, AuditOutcome{Status: OutcomeOK}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = id
	}
	tests := []struct {
		prefix string
		want   []string // newest first
	}{
		{"agent:*", []string{"Agent:Day/tok_2", "agent:night/tok_1"}},
		{"AGENT:D*", []string{"Agent:Day/tok_2"}},
		{"agent:day/TOK_*", []string{"Agent:Day/tok_2"}},
		{"é*", []string{"émile"}},
		{"É*", []string{"Émile"}},
		{"ÉMILE*", []string{"Émile"}},
		{"éMILE*", []string{"émile"}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			page, err := s.AuditSearch(ctx, AuditFilter{Principal: tt.prefix})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range page.Calls {
				got = append(got, nameOf(ids, c.ID))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("principal %s matched %v, want %v", tt.prefix, got, tt.want)
			}
		})
	}
}

// Approvals made in the same nanosecond are ordered and paged by their ids'
// bytes on both engines, whatever the database's collation (the PostgreSQL
// test databases sort text linguistically, where "B" comes after "a").
func TestApprovalsOrderTiesByIDBytes(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	// Byte order: B (0x42) < a (0x61) < c (0x63). An uppercase id is not one
	// Jarvis makes, but it is what tells the two orders apart.
	for _, id := range []string{"apr_a000000000000000", "apr_B000000000000000", "apr_c000000000000000"} {
		exec(t, s, "INSERT INTO approvals (id, principal, tool, status, created_ns, expires_ns) VALUES (?, 'agent:a/t', 'stop_vm', ?, 1000, 2000)",
			id, ApprovalDenied)
	}
	want := []string{"apr_c000000000000000", "apr_a000000000000000", "apr_B000000000000000"} // newest first: descending ids
	list, err := s.ListApprovals(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range list {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListApprovals = %v, want %v", got, want)
	}
	got, before := nil, ""
	for range want {
		page, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Limit: 1, Before: before})
		if err != nil {
			t.Fatalf("ApprovalHistory after %q: %v", before, err)
		}
		for _, a := range page.Approvals {
			got = append(got, a.ID)
		}
		before = page.NextBefore
	}
	if !slices.Equal(got, want) {
		t.Errorf("ApprovalHistory one at a time = %v, want %v", got, want)
	}
}
