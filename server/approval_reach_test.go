package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
)

// An agent whose client gives up before the wait ends still learns the approval
// id, the plan and where to approve: a log message is sent the moment the
// request is stored, and every progress note and the final answer repeat them.
func TestApprovalIDReachesTheCallerAtOnce(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.ApprovalWait = 300 * time.Millisecond
		o.ApproveWhere = func(id string) string {
			return fmt.Sprintf("at http://127.0.0.1:4000/ or with `jarvis approve %s --demo`", id)
		}
	})
	var mu sync.Mutex
	var logs, progress []string
	var values []float64
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(agentRed, &agentRed).Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "impatient", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			mu.Lock()
			logs = append(logs, fmt.Sprint(req.Params.Data))
			mu.Unlock()
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Message)
			values = append(values, req.Params.Progress)
			mu.Unlock()
		},
	}).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 105}}
	params.SetProgressToken("p-approval")
	params.Meta[mcp.MetaKeyLogLevel] = "info" // how a 2026-07-28 client asks for log messages
	res, err := cs.CallTool(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, res)
	if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "jarvis approve "+r.ApprovalID+" --demo") || !strings.Contains(r.Reason, "http://127.0.0.1:4000/") {
		t.Fatalf("final answer: %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n, m := len(logs), len(progress)
		mu.Unlock()
		if n > 0 && m > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log messages %q, progress %q", logs, progress)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for what, msg := range map[string]string{"log message": logs[0], "progress": progress[0]} {
		for _, want := range []string{r.ApprovalID, r.Plan, "jarvis approve " + r.ApprovalID + " --demo", "http://127.0.0.1:4000/"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s %q does not carry %q", what, msg, want)
			}
		}
	}
	if !strings.Contains(logs[0], "expires at") {
		t.Errorf("log message %q does not say when the request expires", logs[0])
	}
}

// One progress token carries one increasing series, even when the wait for a
// person is followed by the task's own progress.
func TestProgressOnlyIncreases(t *testing.T) {
	type note struct{ done, total float64 }
	tests := []struct {
		name string
		in   []note
		want []note
	}{
		{"one series", []note{{0, 20}, {5, 20}, {10, 20}}, []note{{0, 20}, {5, 20}, {10, 20}}},
		{"wait then task", []note{{0, 20}, {5, 20}, {0, 100}, {50, 100}}, []note{{0, 20}, {5, 20}, {6, 106}, {56, 106}}},
		{"repeat dropped", []note{{0, 20}, {0, 20}, {5, 20}}, []note{{0, 20}, {5, 20}}},
		{"restart without total", []note{{3, 0}, {1, 0}}, []note{{3, 0}, {5, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []note
			p := monotonic(func(_ string, done, total float64) { got = append(got, note{done, total}) })
			for _, n := range tt.in {
				p("", n.done, n.total)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].done <= got[i-1].done {
					t.Errorf("progress fell or stood still: %v", got)
				}
			}
		})
	}
}
