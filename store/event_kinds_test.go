package store

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// The payload types must keep the wire names the console reads (web/static/app.js).
func TestEventDetailsWireNames(t *testing.T) {
	keys := func(d EventDetails) []string {
		var m map[string]any
		if err := json.Unmarshal(EncodeDetails(d), &m); err != nil {
			t.Fatalf("%T: %v", d, err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		d    EventDetails
		kind string
		want []string
	}{
		{ToolDetails{}, EventTool, []string{"decision", "duration_ms", "outcome", "phase", "plan", "principal", "reason", "rule", "tier", "tool"}},
		{ApprovalDetails{}, EventApproval, []string{"actor", "approval_id", "expires_at", "phase", "plan", "principal", "status", "tier", "tool"}},
		{ClusterDetails{What: ClusterNodes, Nodes: []NodeSnapshot{}}, EventCluster, []string{"nodes", "what"}},
		{ClusterDetails{What: ClusterGuests, Guests: []GuestSnapshot{}}, EventCluster, []string{"guests", "what"}},
		{ClusterDetails{What: ClusterStorage, Storage: []StorageSnapshot{{}}}, EventCluster, []string{"storage", "what"}},
		{AlertDetails{Key: "k", State: AlertRaised}, EventAlert, []string{"key", "state"}},
		{AlertDetails{Key: "k", State: AlertResolved, AlertID: 7}, EventAlert, []string{"alert_id", "key", "state"}},
		{AlertDetails{Key: "k", State: AlertRaised, AlertKind: AlertGuestStoppedUnexpectedly, Subject: GuestSubject(101), VMID: 101}, EventAlert, []string{"key", "kind", "state", "subject", "vmid"}},
		{RuleDetails{}, EventRule, []string{"actor", "outcome", "phase", "plan", "principal", "reason", "rule_id", "target", "tool", "uses_left", "version"}},
		{AlertDetails{InterruptedCall: &InterruptedCall{AuditID: 3}}, EventAlert, []string{"audit_id", "began", "plan", "principal", "tool"}},
		{SafetyDetails{}, EventSafety, []string{"by", "on", "switch"}},
		{SystemDetails{}, EventSystem, []string{"hash", "installation", "mac", "row", "time"}},
		{DependencyDetails{}, EventSystem, []string{"dependency", "error", "fix", "since", "state"}},
		{DependencyDetails{Dependency: DependencyPVE, State: DependencyRecovered}, EventSystem, []string{"dependency", "error", "fix", "since", "state"}},
	} {
		if got := keys(c.d); !slices.Equal(got, c.want) {
			t.Errorf("%T %+v: keys %v, want %v", c.d, c.d, got, c.want)
		}
		if c.d.Kind() != c.kind || !IsEventKind(c.d.Kind()) {
			t.Errorf("%T: kind %q, want %q", c.d, c.d.Kind(), c.kind)
		}
	}

	// The snapshot rows, field by field.
	rows := []struct {
		d    any
		want []string
	}{
		{NodeSnapshot{}, []string{"cpu_percent", "disk_percent", "maxmem_bytes", "mem_bytes", "mem_percent", "node", "status", "uptime_seconds"}},
		{GuestSnapshot{}, []string{"cpu_percent", "kind", "mem_percent", "name", "node", "status", "vmid"}},
		{StorageSnapshot{}, []string{"node", "shared", "status", "storage", "total_bytes", "type", "used_bytes", "used_percent"}},
	}
	for _, r := range rows {
		b, _ := json.Marshal(r.d)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		var got []string
		for k := range m {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, r.want) {
			t.Errorf("%T: keys %v, want %v", r.d, got, r.want)
		}
	}
}

// Readers decode what publishers wrote, the interrupted-call alert included.
func TestAlertDetailsRoundTrip(t *testing.T) {
	began := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := AlertDetails{InterruptedCall: &InterruptedCall{AuditID: 9, Principal: "agent", Tool: "stop_vm", Plan: "stop 101", Began: began}}
	var out AlertDetails
	if err := json.Unmarshal(EncodeDetails(in), &out); err != nil || out.InterruptedCall == nil || *out.InterruptedCall != *in.InterruptedCall {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
	var raised AlertDetails
	if err := json.Unmarshal([]byte(`{"key":"node-offline:pve","state":"raised"}`), &raised); err != nil ||
		raised.Key != "node-offline:pve" || raised.State != AlertRaised || raised.InterruptedCall != nil {
		t.Fatalf("raised = %+v, %v", raised, err)
	}
}
