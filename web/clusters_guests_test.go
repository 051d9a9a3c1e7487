package web

import (
	"fmt"
	"strings"
	"testing"
)

// The console's guest view reads the cluster it is given: with several, the
// reads go to that cluster (its audit rows name it) and the answer says
// which; an unknown cluster is refused; none given is the default. With one
// cluster the parameter is ignored and the answer names none.
func TestGuestViewReadsTheClusterGiven(t *testing.T) {
	for _, tc := range []struct {
		name     string
		several  bool
		path     string
		status   int
		cluster  string // the answer's; "" for none
		refusal  string
		auditFor string // the cluster whose audit rows hold get_guest_config, "" to skip
	}{
		{"lab", true, "/api/guests/101?cluster=lab", 200, "lab", "", "lab"},
		{"default", true, "/api/guests/101", 200, "home", "", "home"},
		{"unknown", true, "/api/guests/101?cluster=x", 400, "", "no cluster x: one of home, lab", ""},
		{"metrics", true, "/api/guests/101/metrics?timeframe=hour&cluster=lab", 200, "lab", "", ""},
		{"one cluster", false, "/api/guests/101?cluster=lab", 200, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newWebHarness(t)
			if tc.several {
				h = newTwoClusterWeb(t)
			}
			op := h.login()
			resp, out := h.do("GET", tc.path, op, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s: status %d, want %d: %v", tc.path, resp.StatusCode, tc.status, out)
			}
			if tc.refusal != "" && !strings.Contains(fmt.Sprint(out), tc.refusal) {
				t.Errorf("%s: %v, want %q", tc.path, out, tc.refusal)
			}
			if got, _ := out["cluster"].(string); tc.status == 200 && got != tc.cluster {
				t.Errorf("%s: the answer names cluster %q, want %q", tc.path, got, tc.cluster)
			}
			if tc.auditFor != "" {
				_, rows := h.do("GET", "/api/audit/search?tool=get_guest_config&cluster="+tc.auditFor, op, nil)
				if calls, _ := rows["calls"].([]any); len(calls) != 1 {
					t.Errorf("audit rows of get_guest_config on %s: %v, want the one read", tc.auditFor, rows)
				}
			}
		})
	}
}

// With several clusters health lists them, the default first, for the
// console's picker; with one it says nothing new.
func TestHealthListsTheClusters(t *testing.T) {
	_, out := newTwoClusterWeb(t).do("GET", "/api/health", "", nil)
	if got := fmt.Sprint(out["clusters"]); got != "[map[default:true name:home watched:false] map[name:lab watched:false]]" {
		t.Errorf("health's clusters: %s", got)
	}
	if _, out := newWebHarness(t).do("GET", "/api/health", "", nil); out["clusters"] != nil {
		t.Errorf("with one cluster health lists clusters: %v", out["clusters"])
	}
}
