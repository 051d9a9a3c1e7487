package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

func TestCleanText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "Hard stop of VM 101", "Hard stop of VM 101"},
		{"other scripts", "gast-名前 ☃", "gast-名前 ☃"},
		{"NUL", "exit\x00status", "exit\uFFFDstatus"},
		{"NUL at both ends", "\x00x\x00", "\uFFFDx\uFFFD"},
		{"a byte that is not UTF-8", "caf\xe9", "caf\uFFFD"},
		{"a run of them is one", "a\xff\xfe\xfdb", "a\uFFFDb"},
		{"a character cut short", "ok \xe2\x98", "ok \uFFFD"},
		{"a surrogate encoded", "\xed\xa0\x80", "\uFFFD"},
		{"a replacement character already", "\uFFFD", "\uFFFD"},
		{"a backslash and a zero stay", `\0`, `\0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanText(tt.in); got != tt.want {
				t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := cleanText(tt.want); got != tt.want {
				t.Errorf("cleanText of its own result %q = %q", tt.want, got)
			}
		})
	}
}

// badText is what a remote command or a client may send, and PostgreSQL's
// text refuses.
const badText = "stderr: \x00 then caf\xe9"

// badTextStored is badText as the store keeps it.
const badTextStored = "stderr: \uFFFD then caf\uFFFD"

// Text PostgreSQL refuses (a NUL byte, bytes that are not UTF-8), in every
// field that can carry outside text, is stored the same way on either
// engine: a read among others in one batch, a call's begin and end rows, an
// event, an approval. Nothing fails, and the chain verifies.
func TestOutsideTextIsStoredAlikeOnEitherEngine(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	sub := s.Subscribe(100)
	defer sub.Close()

	// One batch, as the writer takes reads arriving together: 40 good rows
	// and one with bad text everywhere.
	bad := AuditEntry{Principal: "agent:x", Tool: "get_" + badText, Args: `{"cluster":"la\u0000b","node":"pve1"}`, Tier: "GREEN",
		Decision: "allow", Plan: "read " + badText, ApprovalID: badText}
	badOutcome := AuditOutcome{Status: OutcomeFailed, Error: badText, UPID: badText, Result: badText}
	var batch []*readRequest
	for i := range 41 {
		e, o := AuditEntry{Principal: "agent:x", Tool: "get_vms", Args: "{}"}, AuditOutcome{Status: OutcomeOK, Result: fmt.Sprint(i)}
		if i == 20 {
			e, o = bad, badOutcome
		}
		ev := &Event{Type: EventTool, Source: "dispatch", Summary: fmt.Sprintf("read %d", i)}
		if i == 20 {
			ev = &Event{Type: EventTool, Source: badText, Node: badText, Summary: badText, Details: json.RawMessage(`{"stderr":"` + "caf\xe9" + `"}`)}
		}
		r, err := s.readRequest(ctx, e, o, ev)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, r)
	}
	s.commitReads(batch)
	for i, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatalf("read %d of the batch: %v", i, err)
		}
	}
	if got := *batch[20].ev; got.Summary != badTextStored || got.Node != badTextStored || string(got.Details) != `{"stderr":"caf`+"\uFFFD"+`"}` {
		t.Errorf("the bad read's event = %+v, want its text made storable", got)
	}

	// A call's begin and end rows.
	id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:x", Tool: "stop_vm", Args: `{"vmid":101}`, Plan: "stop " + badText})
	if err != nil {
		t.Fatalf("AuditBegin with bad text: %v", err)
	}
	if err := s.AuditEnd(ctx, id, AuditOutcome{Status: OutcomeFailed, Error: badText, Result: badText}); err != nil {
		t.Fatalf("AuditEnd with bad text: %v", err)
	}

	// What was stored, read back; and found by the text as it came.
	rows, err := s.AuditRecent(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	end, begin := rows[0], rows[1]
	if begin.Plan != "stop "+badTextStored || end.Error != badTextStored || end.Result != badTextStored {
		t.Errorf("call rows = %+v / %+v, want the text made storable", begin, end)
	}
	page, err := s.AuditSearch(ctx, AuditFilter{Tool: bad.Tool})
	if err != nil || len(page.Calls) != 1 {
		t.Fatalf("search by the bad tool name = %+v, %v; want the one read", page, err)
	}
	read := page.Calls[0]
	for name, got := range map[string]string{"tool": read.Tool, "plan": read.Plan, "approval id": read.ApprovalID,
		"error": read.Error, "upid": read.UPID, "result": read.Result} {
		if !strings.Contains(got, badTextStored) {
			t.Errorf("the read's %s = %q, want %q in it", name, got, badTextStored)
		}
	}
	if read.Cluster != "la\uFFFDb" {
		t.Errorf("the read's cluster = %q, want %q (from its arguments, made storable)", read.Cluster, "la\uFFFDb")
	}

	// An event and an approval.
	ev := &Event{Type: EventAlert, Severity: SeverityWarning, Source: "watch", Cluster: badText, Summary: "unit failed: " + badText}
	if err := s.Publish(ctx, ev); err != nil {
		t.Fatalf("Publish with bad text: %v", err)
	}
	if ev.Summary != "unit failed: "+badTextStored {
		t.Errorf("published summary %q, want it made storable", ev.Summary)
	}
	if _, err := s.ResolveEvent(ctx, ev.ID, badText); err != nil {
		t.Fatalf("ResolveEvent by bad text: %v", err)
	}
	now := time.Now()
	a := &Approval{Principal: "agent:x", Tool: "stop_vm", Args: `{"vmid":101}`, Plan: "stop " + badText, Tier: "RED", ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateApproval(ctx, a); err != nil {
		t.Fatalf("CreateApproval with bad text: %v", err)
	}
	if _, err := s.DecideApproval(ctx, a.ID, true, badText, now); err != nil {
		t.Fatalf("DecideApproval by bad text: %v", err)
	}
	if _, err := s.ConsumeApproval(ctx, a.ID, Binding{Principal: "agent:x", Tool: "stop_vm", Args: `{"vmid":101}`, Plan: "stop " + badText}, now); err != nil {
		t.Fatalf("ConsumeApproval with the plan as the call has it: %v", err)
	}

	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 43 {
		t.Errorf("AuditVerify = %+v, want OK with 43 rows", rep)
	}
	for i := range 42 {
		select {
		case <-sub.C():
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 42 events delivered", i)
		}
	}
}

// A rule is matched against what it names: text that could not be stored as
// given is refused, not changed.
func TestRuleWithTextThatCannotBeStoredIsRefused(t *testing.T) {
	s, _ := openTemp(t)
	base := Rule{Principal: "agent:x/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}},
		PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour), CreatedBy: "operator"}
	tests := []struct {
		name   string
		change func(r *Rule)
		want   string
	}{
		{"principal", func(r *Rule) { r.Principal = "agent:x\x00" }, "whom it is for has a NUL byte"},
		{"tool", func(r *Rule) { r.Tool = "start_vm\xff" }, "the tool has"},
		{"trigger", func(r *Rule) { r.Trigger = "\xffdown" }, "the trigger has"},
		{"argument value", func(r *Rule) { r.Args = map[string][]string{"vmid": {"10\x001"}} }, `argument "vmid" has`},
		{"argument name", func(r *Rule) { r.Args = map[string][]string{"vm\xffid": {"101"}} }, "has a NUL byte or bytes that are not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.change(&r)
			err := s.CreateRule(context.Background(), &r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CreateRule = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	// Free text is stored, made storable.
	r := base
	r.Note = "because " + badText
	if err := s.CreateRule(context.Background(), &r); err != nil || r.Note != "because "+badTextStored {
		t.Errorf("CreateRule with a bad note = %v, note %q; want it stored as %q", err, r.Note, "because "+badTextStored)
	}
}

// A row the database refuses fails only its own read, not the others
// committed in the same batch: they are written again one by one. The
// refusal here is a trigger's, on either engine.
func TestARefusedReadFailsOnlyItself(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if storetest.Engine() == storetest.Postgres {
		exec(t, s, `CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.tool = 'poison' THEN RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22023'; END IF; RETURN NEW; END $$`)
		exec(t, s, `CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_poison()`)
	} else {
		exec(t, s, `CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log WHEN NEW.tool = 'poison'
			BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`)
	}
	sub := s.Subscribe(100)
	defer sub.Close()
	var batch []*readRequest
	for i := range 41 {
		e := AuditEntry{Principal: "agent:x", Tool: "get_vms", Args: "{}"}
		if i == 7 {
			e.Tool = "poison"
		}
		r, err := s.readRequest(ctx, e, AuditOutcome{Status: OutcomeOK}, &Event{Type: EventTool, Summary: fmt.Sprintf("read %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, r)
	}
	s.commitReads(batch)
	for i, r := range batch {
		err := <-r.done
		switch {
		case i == 7 && (err == nil || !strings.Contains(err.Error(), "poisoned row")):
			t.Errorf("the refused read: %v, want the database's refusal", err)
		case i != 7 && err != nil:
			t.Errorf("read %d, committed with the refused one: %v", i, err)
		}
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 40 {
		t.Errorf("AuditVerify = %+v, want OK with the 40 rows written", rep)
	}
	var prev uint64
	for i := range 40 {
		select {
		case ev := <-sub.C():
			if ev.ID <= prev || ev.Summary == "read 7" {
				t.Fatalf("event %+v after %d: out of order, twice or the refused read's", ev, prev)
			}
			prev = ev.ID
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 40 events delivered", i)
		}
	}
	// Waiting for the lock is not worth a second try per row.
	if retryRowByRow(ctx, fmt.Errorf("audit read: %w", ErrLockTimeout)) || retryRowByRow(ctx, errors.Join(context.DeadlineExceeded)) {
		t.Error("a batch that waited too long is written again row by row")
	}
}
