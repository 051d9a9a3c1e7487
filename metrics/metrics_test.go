package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scrape GETs the handler and returns the exposition's lines.
func scrape(t *testing.T, m *Metrics) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the text format", ct)
	}
	body, _ := io.ReadAll(rec.Body)
	return strings.Split(string(body), "\n")
}

func TestScrapeExposesWhatWasObserved(t *testing.T) {
	m := New()
	m.KnownTools([]string{"list_nodes", "start_vm"})
	m.ObserveCall("list_nodes", "green", "allow", "ok", 2*time.Millisecond)
	m.ObserveCall("list_nodes", "green", "allow", "ok", 40*time.Millisecond)
	m.ObserveCall("start_vm", "red", "needs_approval", "refused", 20*time.Second)
	m.ObserveCall("start_vm", "red", "approved", "unknown", 4*time.Minute)
	m.ObserveUpstream("pve1", "GET /nodes", false, 3*time.Millisecond)
	m.ObserveUpstream("pve1", "GET /nodes", true, 12*time.Second)
	m.ObserveCache("guests", "hit")
	m.ObserveCache("guests", "hit")
	m.ObserveCache("guests", "miss")
	m.ObserveCache("guests", "shared")
	pending := 3.0
	m.GaugeFunc("jarvis_approvals_pending", "Approval requests waiting for a person.", func() float64 { return pending })

	lines := scrape(t, m)
	for _, want := range []string{
		`# TYPE jarvis_tool_calls_total counter`,
		`jarvis_tool_calls_total{decision="allow",outcome="ok",tier="green",tool="list_nodes"} 2`,
		`jarvis_tool_calls_total{decision="needs_approval",outcome="refused",tier="red",tool="start_vm"} 1`,
		`jarvis_tool_calls_total{decision="approved",outcome="unknown",tier="red",tool="start_vm"} 1`,
		`# TYPE jarvis_tool_call_duration_seconds histogram`,
		`jarvis_tool_call_duration_seconds_bucket{tier="green",tool="list_nodes",le="0.001"} 0`,
		`jarvis_tool_call_duration_seconds_bucket{tier="green",tool="list_nodes",le="0.0025"} 1`,
		`jarvis_tool_call_duration_seconds_bucket{tier="green",tool="list_nodes",le="0.05"} 2`,
		`jarvis_tool_call_duration_seconds_count{tier="green",tool="list_nodes"} 2`,
		`jarvis_tool_call_duration_seconds_sum{tier="green",tool="list_nodes"} 0.042`,
		`jarvis_tool_call_duration_seconds_bucket{tier="red",tool="start_vm",le="30"} 1`,
		`jarvis_tool_call_duration_seconds_bucket{tier="red",tool="start_vm",le="120"} 1`,
		`jarvis_tool_call_duration_seconds_bucket{tier="red",tool="start_vm",le="300"} 2`,
		`jarvis_tool_call_duration_seconds_bucket{tier="red",tool="start_vm",le="+Inf"} 2`,
		`jarvis_upstream_requests_total{endpoint="pve1",op="GET /nodes",result="ok"} 1`,
		`jarvis_upstream_requests_total{endpoint="pve1",op="GET /nodes",result="error"} 1`,
		`# TYPE jarvis_upstream_request_duration_seconds histogram`,
		`jarvis_upstream_request_duration_seconds_bucket{endpoint="pve1",op="GET /nodes",le="0.005"} 1`,
		`jarvis_upstream_request_duration_seconds_bucket{endpoint="pve1",op="GET /nodes",le="10"} 1`,
		`jarvis_upstream_request_duration_seconds_bucket{endpoint="pve1",op="GET /nodes",le="30"} 2`,
		`jarvis_upstream_request_duration_seconds_count{endpoint="pve1",op="GET /nodes"} 2`,
		`jarvis_read_cache_lookups_total{op="guests",result="hit"} 2`,
		`jarvis_read_cache_lookups_total{op="guests",result="miss"} 1`,
		`jarvis_read_cache_lookups_total{op="guests",result="shared"} 1`,
		`# HELP jarvis_approvals_pending Approval requests waiting for a person.`,
		`# TYPE jarvis_approvals_pending gauge`,
		`jarvis_approvals_pending 3`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("scrape lacks line\n\t%s", want)
		}
	}
	// The runtime and process collectors are on the same registry.
	for _, prefix := range []string{"go_goroutines ", "process_start_time_seconds "} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("scrape has no %q line", prefix)
		}
	}
	// A gauge is read at scrape time, not when registered.
	pending = 0
	if lines := scrape(t, m); !slices.Contains(lines, "jarvis_approvals_pending 0") {
		t.Error("the gauge did not follow its function")
	}
}

// Tool names come from callers: only the catalogue's get a series of their own.
func TestToolsOutsideTheCatalogueShareOneLabel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known []string // nil: KnownTools never called
		calls []string
		want  []string
		never string
	}{
		{"before wiring every name is unknown", nil, []string{"list_nodes", "x"},
			[]string{`jarvis_tool_calls_total{decision="blocked",outcome="refused",tier="black",tool="unknown"} 2`}, `tool="list_nodes"`},
		{"invented names", []string{"list_nodes"}, []string{"list_nodes", "evil-1", "evil-2", "evil-3"},
			[]string{
				`jarvis_tool_calls_total{decision="blocked",outcome="refused",tier="black",tool="list_nodes"} 1`,
				`jarvis_tool_calls_total{decision="blocked",outcome="refused",tier="black",tool="unknown"} 3`,
				`jarvis_tool_call_duration_seconds_count{tier="black",tool="unknown"} 3`,
			}, "evil"},
		{"names that are not label values", []string{"list_nodes"}, []string{"\xff\xfe", "a\nb", strings.Repeat("x", 1<<16)},
			[]string{`jarvis_tool_calls_total{decision="blocked",outcome="refused",tier="black",tool="unknown"} 3`}, "xxxx"},
		{"an emptied catalogue", []string{}, []string{"list_nodes"},
			[]string{`jarvis_tool_calls_total{decision="blocked",outcome="refused",tier="black",tool="unknown"} 1`}, `tool="list_nodes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			if tc.known != nil {
				m.KnownTools(tc.known)
			}
			for _, c := range tc.calls {
				m.ObserveCall(c, "black", "blocked", "refused", time.Millisecond)
			}
			lines := scrape(t, m)
			for _, want := range tc.want {
				if !slices.Contains(lines, want) {
					t.Errorf("scrape lacks line\n\t%s", want)
				}
			}
			if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, tc.never) }); i >= 0 {
				t.Errorf("a caller's tool name became a label: %.80s", lines[i])
			}
		})
	}
}

// Label values Jarvis passes on must never panic a tool call, even invalid ones.
func TestInvalidLabelValuesAreDroppedNotPanicked(t *testing.T) {
	m := New()
	m.KnownTools([]string{"list_nodes"})
	m.ObserveCall("list_nodes", "green", "\xff", "ok", time.Millisecond)
	m.ObserveUpstream("\xff", "GET", false, time.Millisecond)
	m.ObserveCache("guests", "\xff")
	for _, l := range scrape(t, m) {
		if strings.HasPrefix(l, "jarvis_tool_calls_total{") || strings.HasPrefix(l, "jarvis_upstream_requests_total{") ||
			strings.HasPrefix(l, "jarvis_read_cache_lookups_total{") {
			t.Errorf("an invalid label value made a series: %s", l)
		}
	}
}

func TestNilMetricsDoesNothing(t *testing.T) {
	var m *Metrics
	m.KnownTools([]string{"list_nodes"})
	m.ObserveCall("list_nodes", "green", "allow", "ok", time.Millisecond)
	m.ObserveUpstream("pve1", "GET /nodes", true, time.Millisecond)
	m.ObserveCache("guests", "hit")
	m.GaugeFunc("jarvis_feed_subscribers", "x", func() float64 { t.Error("a nil Metrics called a gauge"); return 0 })
	if h := m.Handler(); h != nil {
		t.Errorf("Handler() = %v, want nil so no route is mounted", h)
	}
}

func TestHistogramBucketsCoverTheRange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		buckets  []float64
		min, max float64 // seconds: the fastest and slowest observation that must land in a finite bucket
	}{
		{"tool calls: cached read to a task at the exec timeout", callBuckets, 0.0005, 300},
		{"upstream: a LAN request to a slow failover", upstreamBuckets, 0.001, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.buckets[0] > tc.min || tc.buckets[len(tc.buckets)-1] < tc.max {
				t.Errorf("buckets %v do not span %v…%v s", tc.buckets, tc.min, tc.max)
			}
			for i := 1; i < len(tc.buckets); i++ {
				// Each bucket at most 3× the last, so a quantile is never a wild guess.
				if r := tc.buckets[i] / tc.buckets[i-1]; r <= 1 || r > 3.01 {
					t.Errorf("bucket %v after %v: ratio %.2f", tc.buckets[i], tc.buckets[i-1], r)
				}
			}
		})
	}
}

func TestGaugeFuncNameTakenTwicePanics(t *testing.T) {
	m := New()
	m.GaugeFunc("jarvis_mcp_sessions_open", "Open MCP sessions.", func() float64 { return 0 })
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic at wiring")
		}
	}()
	m.GaugeFunc("jarvis_mcp_sessions_open", "Open MCP sessions.", func() float64 { return 0 })
}

// Dispatch observes from many goroutines while Prometheus scrapes; -race checks it.
func TestObservingWhileScraping(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i == 0 {
				m.KnownTools([]string{"list_nodes"})
			}
			for range 100 {
				m.ObserveCall("list_nodes", "green", "allow", "ok", time.Millisecond)
				m.ObserveUpstream("pve1", "GET /nodes", false, time.Millisecond)
				m.ObserveCache("guests", "hit")
			}
		})
	}
	wg.Go(func() {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("scrape while observing: %d", rec.Code)
		}
	})
	wg.Wait()
	lines := scrape(t, m)
	if !slices.Contains(lines, `jarvis_read_cache_lookups_total{op="guests",result="hit"} 800`) {
		t.Error("lost cache lookups under concurrency")
	}
	if !slices.Contains(lines, `jarvis_upstream_request_duration_seconds_count{endpoint="pve1",op="GET /nodes"} 800`) {
		t.Error("lost upstream observations under concurrency")
	}
}
