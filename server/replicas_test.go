package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// Several Jarvis replicas share one database (PostgreSQL; on SQLite two
// handles on one file stand in for them): what a person decides on one
// replica holds for a call waiting on another, at the moment it would run.

// replica is another Server on h's cluster and database, through a store
// handle of its own; both handles follow the other's events, as jarvis
// serve does.
func (h *harness) replica() (*Server, *store.Store) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	st, err := store.Open(h.target, store.Options{AuditKey: safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	go st.FollowOtherWriters(ctx, 50*time.Millisecond)
	go h.store.FollowOtherWriters(ctx, 50*time.Millisecond)

	return h.serverOn(st), st
}

// serverOn is another Server like h's, on the cluster of h, with store st.
func (h *harness) serverOn(st *store.Store) *Server {
	h.t.Helper()
	opts := h.srv.opts
	opts.Store, opts.Clusters = st, nil
	for _, c := range h.srv.clusters {
		env := *c.Env
		env.Created, env.Alerts = nil, nil // New sets this server's own
		opts.Clusters = append(opts.Clusters, Cluster{Name: c.Name, Env: &env, Policy: c.Policy})
	}
	srv, err := New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	return srv
}

// waitOnA starts a RED call on h's server that waits for a person, and
// returns the pending approval's id and the call's answer to come.
func (h *harness) waitOnA() (string, <-chan *mcp.CallToolResult) {
	h.t.Helper()
	got := make(chan *mcp.CallToolResult, 1)
	go func() {
		got <- h.srv.Dispatch(context.Background(), Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
	}()
	return h.waitPending(), got
}

func TestDecisionsOnAnotherReplica(t *testing.T) {
	for _, tc := range []struct {
		name string
		// decide acts on replica B while the call waits on A.
		decide func(ctx context.Context, b *Server, id string) error
		want   safety.Decision // "" means the call runs
	}{
		{"approved", func(ctx context.Context, b *Server, id string) error {
			_, err := b.DecideApproval(ctx, id, true, "operator")
			return err
		}, ""},
		{"denied", func(ctx context.Context, b *Server, id string) error {
			_, err := b.DecideApproval(ctx, id, false, "operator")
			return err
		}, safety.Denied},
		{"kill switch", func(ctx context.Context, b *Server, id string) error {
			return b.SetSwitch(ctx, PrefKillSwitch, true, "operator")
		}, safety.KillSwitch},
		{"read-only mode", func(ctx context.Context, b *Server, id string) error {
			return b.SetSwitch(ctx, PrefReadOnly, true, "operator")
		}, safety.ReadOnlyMode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Long enough that only the decision on B can end the wait.
			h := newHarness(t, func(o *Options) { o.ApprovalWait = time.Minute })
			b, _ := h.replica()
			ctx := context.Background()
			id, got := h.waitOnA()
			decided := time.Now()
			if err := tc.decide(ctx, b, id); err != nil {
				t.Fatal(err)
			}
			var res *mcp.CallToolResult
			select {
			case res = <-got:
			case <-time.After(30 * time.Second):
				t.Fatalf("the call waiting on A did not end within 30 s of the decision on B (%s)", tc.name)
			}
			t.Logf("%s on B → the answer on A after %s", tc.name, time.Since(decided).Round(time.Millisecond))
			if tc.want == "" {
				if res.IsError || h.guestStatus(101) != "stopped" || h.executions("stop_vm") != 1 {
					t.Fatalf("approved on B: %s; VM %s, %d executions", textOf(res), h.guestStatus(101), h.executions("stop_vm"))
				}
				return
			}
			if r := refusalOf(t, res); r.Decision != tc.want || r.ApprovalID != id {
				t.Fatalf("after %s on B the call on A answered %+v, want %s", tc.name, r, tc.want)
			}
			if h.guestStatus(101) != "running" || h.executions("stop_vm") != 0 {
				t.Fatalf("stop_vm ran after %s on B", tc.name)
			}
		})
	}
}

// A switch turned on through one replica refuses the next call on another
// at once: each replica reads the switches when it decides.
func TestSwitchOnAnotherReplicaRefusesTheNextCall(t *testing.T) {
	for _, sc := range switchCases {
		t.Run(sc.key, func(t *testing.T) {
			h := newHarness(t)
			b, _ := h.replica()
			if err := b.SetSwitch(context.Background(), sc.key, true, "operator"); err != nil {
				t.Fatal(err)
			}
			r := refusalOf(t, h.call(agentRed, "start_vm", map[string]any{"vmid": 104}))
			if r.Decision != sc.want {
				t.Fatalf("start_vm on A after %s on B: %+v", sc.key, r)
			}
		})
	}
}

// A replica started again under its id closes, with an alert, the calls its
// earlier run left running.
func TestRecoverEarlierRun(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	key := safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")
	earlier, err := store.Open(h.target, store.Options{AuditKey: key, Replica: "replica-a"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := earlier.AuditBegin(ctx, h.srv.auditEntry(Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)}, safety.Red, "approved", "plan", ""))
	if err != nil {
		t.Fatal(err)
	}
	_ = earlier.Close() // the process died with the call running

	again, err := store.Open(h.target, store.Options{AuditKey: key, Replica: "replica-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	if err := h.serverOn(again).RecoverEarlierRun(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := again.AuditSearch(ctx, store.AuditFilter{Tool: "stop_vm"})
	if err != nil || len(page.Calls) != 1 || page.Calls[0].ID != id || page.Calls[0].Outcome != store.OutcomeInterrupted {
		t.Fatalf("the earlier run's call: %+v, %v", page, err)
	}
	alerts, err := again.ListEvents(ctx, store.EventFilter{Type: store.EventAlert})
	if err != nil || len(alerts) != 1 || !strings.Contains(alerts[0].Summary, "interrupted") {
		t.Fatalf("alerts %+v, %v", alerts, err)
	}
}
