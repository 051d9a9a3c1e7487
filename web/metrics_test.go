package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/metrics"
	"github.com/jarvis-homelab/jarvis/safety"
)

func TestMetricsAreForOperatorsOnly(t *testing.T) {
	m := metrics.New()
	m.KnownTools([]string{"list_nodes"})
	m.ObserveCall("list_nodes", "green", "allow", "ok", time.Millisecond)
	h := newWebHarness(t, func(o *Options) { o.Metrics = m.Handler() })
	bare := newWebHarness(t)
	agentTok, _, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	operatorTok := h.login()

	for _, tc := range []struct {
		name     string
		h        *webHarness
		token    string
		want     int
		wantLine string
	}{
		{"no token", h, "", http.StatusUnauthorized, ""},
		{"a forged token", h, "garbage.token.here", http.StatusUnauthorized, ""},
		{"an agent token", h, agentTok, http.StatusForbidden, ""},
		{"an operator token", h, operatorTok, http.StatusOK,
			`jarvis_tool_calls_total{decision="allow",outcome="ok",tier="green",tool="list_nodes"} 1`},
		{"no Metrics configured", bare, bare.login(), http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.h.ts.URL+"/metrics", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /metrics: %d, want %d\n%s", resp.StatusCode, tc.want, body)
			}
			if tc.want != http.StatusOK {
				if strings.Contains(string(body), "jarvis_") {
					t.Errorf("a refused scrape leaked metrics:\n%s", body)
				}
				return
			}
			if !strings.Contains(string(body), "\n"+tc.wantLine+"\n") {
				t.Errorf("scrape lacks line\n\t%s\nin\n%s", tc.wantLine, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}
