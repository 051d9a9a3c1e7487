package store

import (
	"context"
	"fmt"
	"testing"
)

// A guest counts as created by Jarvis only with a record AND the creating
// call's audit rows ending ok; forgetting it (after delete_guest) ends that.
func TestCreatedByJarvis(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	marker := func(vmid int) string { return fmt.Sprintf("jarvis-id-%016x", vmid) }
	call := func(tool, status string, end bool) uint64 {
		t.Helper()
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:bot", Tool: tool, Args: "{}", Tier: "yellow", Decision: "allow"})
		if err != nil {
			t.Fatal(err)
		}
		if end {
			if err := s.AuditEnd(ctx, id, AuditOutcome{Status: status}); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	cases := []struct {
		name   string
		vmid   int
		tool   string // the record's tool
		begin  uint64
		want   bool
		record bool
	}{
		{name: "clone ended ok", vmid: 120, tool: "clone_guest", begin: call("clone_guest", OutcomeOK, true), record: true, want: true},
		{name: "restore ended ok", vmid: 121, tool: "restore_backup", begin: call("restore_backup", OutcomeOK, true), record: true, want: true},
		{name: "no record", vmid: 122, want: false},
		{name: "call never ended", vmid: 123, tool: "clone_guest", begin: call("clone_guest", "", false), record: true, want: false},
		{name: "call failed", vmid: 124, tool: "clone_guest", begin: call("clone_guest", OutcomeFailed, true), record: true, want: false},
		{name: "outcome unknown", vmid: 125, tool: "clone_guest", begin: call("clone_guest", OutcomeUnknown, true), record: true, want: false},
		{name: "record names another call's tool", vmid: 126, tool: "clone_guest", begin: call("create_snapshot", OutcomeOK, true), record: true, want: false},
	}
	for _, c := range cases {
		if c.record {
			if err := s.RecordCreatedGuest(ctx, CreatedGuest{VMID: c.vmid, Node: "pve", Tool: c.tool, Principal: "agent:bot", Marker: marker(c.vmid), BeginID: c.begin}); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		got, err := s.CreatedByJarvis(ctx, c.vmid, marker(c.vmid))
		if err != nil || got != c.want {
			t.Errorf("%s: CreatedByJarvis(%d) = %v, %v; want %v", c.name, c.vmid, got, err, c.want)
		}
	}
	// The same VMID with another id tag (a guest a person made, that copied
	// Jarvis's tags) or none is not Jarvis's.
	for _, m := range []string{"jarvis-id-ffff", ""} {
		if got, err := s.CreatedByJarvis(ctx, 120, m); err != nil || got {
			t.Errorf("CreatedByJarvis(120, %q) = %v, %v; want false", m, got, err)
		}
	}
	list, err := s.ListCreatedGuests(ctx)
	if err != nil || len(list) != 6 || list[0].VMID != 120 {
		t.Errorf("ListCreatedGuests = %+v, %v", list, err)
	}
	if err := s.ForgetCreatedGuest(ctx, 120); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CreatedByJarvis(ctx, 120, marker(120)); got {
		t.Error("a forgotten guest still counts as created by Jarvis")
	}
	if err := s.RecordCreatedGuest(ctx, CreatedGuest{VMID: 130, Marker: marker(130)}); err == nil {
		t.Error("a record without its audit row was accepted")
	}
	if err := s.RecordCreatedGuest(ctx, CreatedGuest{VMID: 130, BeginID: call("clone_guest", OutcomeOK, true)}); err == nil {
		t.Error("a record without the guest's id tag was accepted")
	}
	// Another process on the same database file sees them.
	s2 := openAt(t, path, testKey)
	if got, _ := s2.CreatedByJarvis(ctx, 121, marker(121)); !got {
		t.Error("the record of guest 121 did not survive a reopen")
	}
}
