package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
)

// Ids the caller got wrong are the caller's mistake: 400 naming the field, never
// a 500 and never a lookup of something that cannot exist.
func TestUnparsableAndOutOfRangeIDsAre400(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	cases := []struct {
		method, path, field string
	}{
		{"POST", "/api/memory/events/18446744073709551615/resolve", "id"},
		{"POST", "/api/memory/events/9223372036854775808/resolve", "id"},
		{"POST", "/api/memory/events/99999999999999999999999/resolve", "id"},
		{"POST", "/api/memory/events/-1/resolve", "id"},
		{"POST", "/api/memory/events/0/resolve", "id"},
		{"POST", "/api/memory/events/1e3/resolve", "id"},
		{"POST", "/api/memory/events/abc/resolve", "id"},
		{"GET", "/api/approvals/apr_XYZ", "id"},
		{"GET", "/api/approvals/..%2F..%2Fetc", "id"},
		{"GET", "/api/approvals/" + strings.Repeat("a", 5000), "id"},
		{"POST", "/api/approvals/APR_00000000DEADBEEF/approve", "id"},
		{"POST", "/api/approvals/apr_00000000deadbeef00/deny", "id"},
	}
	for _, c := range cases {
		resp, out := h.do(c.method, c.path, op, nil)
		details, _ := out["details"].(map[string]any)
		if resp.StatusCode != http.StatusBadRequest || details["field"] != c.field || out["error"] == "" {
			t.Errorf("%s %s: %d %v, want 400 naming %q", c.method, c.path[:min(len(c.path), 60)], resp.StatusCode, out, c.field)
		}
	}
	// The largest id that can exist is a well-formed question: it just is not there.
	if resp, _ := h.do("POST", "/api/memory/events/9223372036854775807/resolve", op, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("largest event id: %d, want 404", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/api/approvals/apr_00000000deadbeef", op, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("well-formed unknown approval: %d, want 404", resp.StatusCode)
	}
	// Last-Event-ID on the feed: same rule.
	for _, v := range []string{"18446744073709551615", "-5", "x"} {
		req, _ := http.NewRequest("GET", h.ts.URL+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+op)
		req.Header.Set("Last-Event-ID", v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		details, _ := out["details"].(map[string]any)
		if resp.StatusCode != http.StatusBadRequest || details["field"] != "Last-Event-ID" {
			t.Errorf("Last-Event-ID %q: %d %v", v, resp.StatusCode, out)
		}
	}
}

func TestApprovingWhileASwitchIsOnIsRefused(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	agent := safety.Principal{ID: "agent:x", Kind: "agent", MaxTier: safety.Red}
	res := h.srv.Dispatch(context.Background(), server.Call{Principal: agent, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
	var ref server.Refusal
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &ref)
	if ref.ApprovalID == "" {
		t.Fatalf("stop_vm: %s", b)
	}
	for _, sw := range []string{"kill_switch", "read_only"} {
		if resp, _ := h.do("PUT", "/api/safety", op, map[string]bool{sw: true}); resp.StatusCode != 200 {
			t.Fatalf("%s on: %d", sw, resp.StatusCode)
		}
		resp, out := h.do("POST", "/api/approvals/"+ref.ApprovalID+"/approve", op, nil)
		details, _ := out["details"].(map[string]any)
		if resp.StatusCode != http.StatusConflict || details["reason"] != "safety_switch" || !strings.Contains(out["error"].(string), "nothing can be approved") {
			t.Fatalf("approve with %s on: %d %v", sw, resp.StatusCode, out)
		}
		if resp, _ := h.do("PUT", "/api/safety", op, map[string]bool{sw: false}); resp.StatusCode != 200 {
			t.Fatalf("%s off: %d", sw, resp.StatusCode)
		}
	}
	if resp, out := h.do("GET", "/api/approvals/"+ref.ApprovalID, op, nil); resp.StatusCode != 200 || out["status"] != "pending" {
		t.Fatalf("the refused approvals changed it: %d %v", resp.StatusCode, out)
	}
	if resp, _ := h.do("POST", "/api/approvals/"+ref.ApprovalID+"/approve", op, nil); resp.StatusCode != 200 {
		t.Fatalf("approve with the switches off: %d", resp.StatusCode)
	}
}
