package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClusterOfArgs(t *testing.T) {
	tests := []struct{ args, want string }{
		{``, ""},
		{`{}`, ""},
		{`{"vmid":101}`, ""},
		{`{"cluster":"lab"}`, "lab"},
		{`{"cluster":"lab","vmid":101}`, "lab"},
		{`{"vmid":101,"cluster":"home"}`, "home"},
		{`{"cluster":5}`, ""},
		{`{"cluster":null}`, ""},
		{`{"cluster":["lab"]}`, ""},
		{`{"target":{"cluster":"lab"}}`, ""},
		{`{"CLUSTER":"lab"}`, ""},
		{`not json "cluster"`, ""},
		{`{"note":"\"cluster\""}`, ""},
	}
	for _, tt := range tests {
		if got := clusterOfArgs(tt.args); got != tt.want {
			t.Errorf("clusterOfArgs(%s) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// The cluster column is outside the hash: a row's hash is what it was before
// the column existed, whatever the column says.
func TestClusterIsNotHashed(t *testing.T) {
	r := auditRecord{ID: 7, TimeNS: 1, Kind: "begin", Principal: "p", Tool: "t", Args: `{"cluster":"lab"}`}
	plain := rowHash(r)
	r.Cluster = "lab"
	if rowHash(r) != plain {
		t.Error("the cluster column changes the row hash")
	}
}

// Audit rows say the cluster their arguments name, end rows their begin
// row's, and the console searches by it.
func TestAuditRowsCarryTheirCluster(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	begin := func(args string) uint64 {
		t.Helper()
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "start_vm", Args: args, Tier: "YELLOW", Decision: "allow"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	lab := begin(`{"cluster":"lab","vmid":101}`)
	if err := s.AuditEnd(ctx, lab, AuditOutcome{Status: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	begin(`{"cluster":"home","vmid":101}`) // left running, then interrupted
	plain := begin(`{"vmid":101}`)
	if err := s.AuditEnd(ctx, plain, AuditOutcome{Status: OutcomeFailed}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:ci", Tool: "get_vms", Args: `{"cluster":"lab"}`}, AuditOutcome{Status: OutcomeOK}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkInterrupted(ctx, -time.Second); err != nil {
		t.Fatal(err)
	}

	rows, err := s.AuditRecent(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(rows) - 1; i >= 0; i-- {
		got = append(got, fmt.Sprintf("%s:%s", rows[i].Kind, rows[i].Cluster))
	}
	want := "begin:lab end:lab begin:home begin: end: read:lab end:home"
	if strings.Join(got, " ") != want {
		t.Errorf("rows say %v, want %s", got, want)
	}
	if rep := mustVerify(t, s); !rep.OK {
		t.Errorf("AuditVerify = %+v", rep)
	}

	for cluster, want := range map[string]string{"lab": "get_vms:ok start_vm:ok", "home": "start_vm:interrupted", "none": ""} {
		page, err := s.AuditSearch(ctx, AuditFilter{Cluster: cluster})
		if err != nil {
			t.Fatal(err)
		}
		var calls []string
		for _, c := range page.Calls {
			if c.Cluster != cluster {
				t.Errorf("a search of cluster %s found a call on %q", cluster, c.Cluster)
			}
			calls = append(calls, c.Tool+":"+c.Outcome)
		}
		if strings.Join(calls, " ") != want {
			t.Errorf("calls on %s: %v, want %s", cluster, calls, want)
		}
	}
}

// A cluster column changed after the row was written is caught, though the
// row's hash still matches.
func TestAuditVerifyCatchesAChangedCluster(t *testing.T) {
	tests := []struct {
		name, update string
		bad          uint64
	}{
		{"begin row moved to another cluster", "UPDATE audit_log SET cluster = 'home' WHERE id = 1", 1},
		{"end row moved to another cluster", "UPDATE audit_log SET cluster = 'home' WHERE id = 2", 2},
		{"end row's cluster emptied", "UPDATE audit_log SET cluster = '' WHERE id = 2", 2},
		{"row without a cluster given one", "UPDATE audit_log SET cluster = 'lab' WHERE id = 3", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openTemp(t)
			id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "start_vm", Args: `{"cluster":"lab","vmid":101}`})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AuditEnd(ctx, id, AuditOutcome{Status: OutcomeOK}); err != nil {
				t.Fatal(err)
			}
			seedCalls(t, s, 1)
			exec(t, s, tt.update)
			wantBroken(t, s, tt.bad, "cluster column was changed")
		})
	}
}

func TestEventsCarryTheirCluster(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for _, c := range []string{"lab", "", "home"} {
		if err := s.Publish(ctx, &Event{Type: EventAlert, Summary: "alert on " + c, Cluster: c}); err != nil {
			t.Fatal(err)
		}
	}
	ev := &Event{Type: EventTool, Summary: "read on lab", Cluster: "lab"}
	if _, err := s.AuditRead(ctx, AuditEntry{Principal: "p", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, ev); err != nil {
		t.Fatal(err)
	}
	all, err := s.EventsAfter(ctx, 0, 10)
	if err != nil || len(all) != 4 || all[0].Cluster != "lab" || all[1].Cluster != "" || all[3].Cluster != "lab" {
		t.Fatalf("EventsAfter = %+v, %v", all, err)
	}
	lab, err := s.ListEvents(ctx, EventFilter{Cluster: "lab"})
	if err != nil || len(lab) != 2 || lab[0].Summary != "read on lab" || lab[1].Summary != "alert on lab" {
		t.Errorf("ListEvents(lab) = %+v, %v", lab, err)
	}
}

func TestApprovalsCarryTheirCluster(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	tests := []struct {
		name, cluster, args string
		want                string // the cluster stored, or the error
	}{
		{"named by the arguments", "", `{"cluster":"lab","vmid":101}`, "lab"},
		{"given and named alike", "lab", `{"cluster":"lab","vmid":101}`, "lab"},
		{"given, arguments without", "pve", `{"vmid":101}`, "pve"},
		{"none", "", `{"vmid":101}`, ""},
		{"given and named otherwise", "home", `{"cluster":"lab","vmid":101}`, "error: it says cluster home, its arguments name lab"},
	}
	for _, tt := range tests {
		a := &Approval{Principal: "agent:ci", Tool: "stop_vm", Cluster: tt.cluster, Args: tt.args, Plan: "stop", Tier: "RED",
			CreatedAt: approvalTime, ExpiresAt: approvalTime.Add(time.Minute)}
		err := s.CreateApproval(ctx, a)
		if msg, refused := strings.CutPrefix(tt.want, "error: "); refused {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%s: CreateApproval = %v, want %q", tt.name, err, msg)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got, err := s.GetApproval(ctx, a.ID); err != nil || got.Cluster != tt.want || a.Cluster != tt.want {
			t.Errorf("%s: stored %+v, %v; want cluster %q", tt.name, got, err, tt.want)
		}
		if _, err := s.DecideApproval(ctx, a.ID, false, "operator", approvalTime); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.ApprovalHistory(ctx, ApprovalHistoryFilter{Cluster: "lab"})
	if err != nil || len(page.Approvals) != 2 {
		t.Errorf("ApprovalHistory(lab) = %+v, %v; want 2", page, err)
	}
}

func TestRulesCarryTheirCluster(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	rule := func(clusters ...string) Rule {
		args := map[string][]string{"vmid": {"101"}}
		if clusters != nil {
			args["cluster"] = clusters
		}
		return Rule{Principal: "agent:ci", Tool: "start_vm", Cluster: "ignored", Args: args, PerTargetPerHour: 1, MaxFailures: 1,
			ExpiresAt: time.Now().Add(time.Hour), CreatedBy: "operator"}
	}
	tests := []struct {
		name string
		r    Rule
		want string
	}{
		{"one cluster", rule("lab"), "lab"},
		{"several", rule("home", "lab"), ""},
		{"any", rule("*"), ""},
		{"none named", rule(), ""},
	}
	for _, tt := range tests {
		r := tt.r
		if err := s.CreateRule(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetRule(ctx, r.ID); err != nil || got.Cluster != tt.want || r.Cluster != tt.want {
			t.Errorf("%s: stored %+v, %v; want cluster %q", tt.name, got, err, tt.want)
		}
	}
	r := rule("lab")
	if err := s.CreateRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	next, err := s.UpdateRule(ctx, r.ID, rule("home"))
	if err != nil || next.Cluster != "home" {
		t.Errorf("a new version for home: %+v, %v", next, err)
	}
}

// Each cluster has its own VMIDs: guest 150 on lab is not guest 150 on home,
// and the Store's own methods keep to the cluster "".
func TestCreatedGuestsPerCluster(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	record := func(cluster, marker string) {
		t.Helper()
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "clone_guest", Args: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AuditEnd(ctx, id, AuditOutcome{Status: OutcomeOK}); err != nil {
			t.Fatal(err)
		}
		g := CreatedGuest{VMID: 150, Node: "pve1", Tool: "clone_guest", Principal: "agent:ci", Marker: marker, BeginID: id}
		if err := s.CreatedGuestsOn(cluster).Record(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	record("", "jarvis-id-0")
	record("lab", "jarvis-id-1")
	record("home", "jarvis-id-2")

	tests := []struct {
		cluster, marker string
		want            bool
	}{
		{"", "jarvis-id-0", true},
		{"lab", "jarvis-id-1", true},
		{"home", "jarvis-id-2", true},
		{"lab", "jarvis-id-2", false}, // home's guest 150 is not lab's
		{"", "jarvis-id-1", false},
		{"other", "jarvis-id-1", false},
	}
	for _, tt := range tests {
		if got, err := s.CreatedGuestsOn(tt.cluster).CreatedByJarvis(ctx, 150, tt.marker); err != nil || got != tt.want {
			t.Errorf("CreatedByJarvis(%q, 150, %s) = %v, %v; want %v", tt.cluster, tt.marker, got, err, tt.want)
		}
	}
	if got, _ := s.CreatedByJarvis(ctx, 150, "jarvis-id-0"); !got {
		t.Error("Store.CreatedByJarvis does not answer for the cluster \"\"")
	}
	list, err := s.ListCreatedGuests(ctx)
	if err != nil || len(list) != 3 || list[0].Cluster != "" || list[1].Cluster != "home" || list[2].Cluster != "lab" {
		t.Fatalf("ListCreatedGuests = %+v, %v", list, err)
	}
	if tool, _, err := s.CreatedGuestsOn("lab").CreatedGuestDetails(ctx, 150); err != nil || tool != "clone_guest" {
		t.Errorf("details of lab/150: %q, %v", tool, err)
	}
	if _, _, err := s.CreatedGuestsOn("other").CreatedGuestDetails(ctx, 150); !errors.Is(err, ErrNotFound) {
		t.Errorf("details of other/150: %v, want ErrNotFound", err)
	}
	if err := s.CreatedGuestsOn("lab").Forget(ctx, 150); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CreatedGuestsOn("lab").CreatedByJarvis(ctx, 150, "jarvis-id-1"); got {
		t.Error("lab/150 still counts after it was forgotten")
	}
	if got, _ := s.CreatedGuestsOn("home").CreatedByJarvis(ctx, 150, "jarvis-id-2"); !got {
		t.Error("forgetting lab/150 forgot home/150 too")
	}
}

// InClusters lists the events of any of the clusters named, "" included:
// a watcher reads its own cluster's open alerts (and the default cluster's
// watcher those from before several clusters) without the others'.
func TestListEventsInClusters(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for _, c := range []string{"", "home", "lab", "lab", "away"} {
		if err := s.Publish(ctx, &Event{Type: EventAlert, Severity: SeverityWarning, Source: "test", Cluster: c, Summary: "alert on " + c}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		in   []string
		want []string // newest first
	}{
		{[]string{"lab"}, []string{"lab", "lab"}},
		{[]string{"home", ""}, []string{"home", ""}},
		{[]string{""}, []string{""}},
		{nil, []string{"away", "lab", "lab", "home", ""}},
	} {
		evs, err := s.ListEvents(ctx, EventFilter{Type: EventAlert, InClusters: tc.in})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Cluster)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("InClusters %q: clusters %q, want %q", tc.in, got, tc.want)
		}
	}
}
