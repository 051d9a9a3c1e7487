package notify

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// Events published to a real store arrive, in order, as the right messages;
// what is no news never arrives.
func TestEventsFromTheStoreBecomeMessages(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	startNotifier(t, st, Options{Channels: []Channel{rec}, ConsoleURL: "https://jarvis.example/"})

	apr := "apr_00112233445566ff"
	publish(t, st, store.SeverityInfo, "cluster nodes snapshot", store.ClusterDetails{What: store.ClusterNodes, Nodes: []store.NodeSnapshot{}})
	publish(t, st, store.SeverityInfo, "agent begun stop_vm", store.ToolDetails{Phase: store.ToolBegun, Principal: "agent:a", Tool: "stop_vm"})
	publish(t, st, store.SeverityWarning, "approval requested", store.ApprovalDetails{Phase: store.ApprovalRequested, ApprovalID: apr,
		Principal: "agent:a", Tool: "stop_vm", Tier: "red", Plan: "Hard stop of VM 101 'web01'", ExpiresAt: time.Now().Add(10 * time.Minute)})
	publish(t, st, store.SeverityInfo, "approved", store.ApprovalDetails{Phase: store.ApprovalApproved, ApprovalID: apr,
		Principal: "agent:a", Tool: "stop_vm", Actor: "operator", Plan: "Hard stop of VM 101 'web01'"})
	publish(t, st, store.SeverityInfo, "consumed", store.ApprovalDetails{Phase: "consumed", ApprovalID: apr, Tool: "stop_vm"})
	publish(t, st, store.SeverityInfo, "agent stop_vm ended (ok)", store.ToolDetails{Phase: store.ToolEnded, Tool: "stop_vm", Outcome: store.OutcomeOK})
	publish(t, st, store.SeverityWarning, "agent stop_vm ended (unknown)", store.ToolDetails{Phase: store.ToolEnded, Principal: "agent:a",
		Tool: "stop_vm", Outcome: store.OutcomeUnknown, Reason: "no answer", Plan: "Hard stop of VM 101"})
	publish(t, st, store.SeverityCritical, "node pve2 is offline", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertRaised})
	publish(t, st, store.SeverityInfo, "node pve2 is back", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertResolved, AlertID: 1})
	publish(t, st, store.SeverityWarning, "kill switch turned on by operator", store.SafetyDetails{Switch: "safety.kill_switch", On: true, By: "operator"})
	publish(t, st, store.SeverityCritical, "cannot read the cluster", store.DependencyDetails{Dependency: store.DependencyPVE,
		State: store.DependencyFailing, Error: "no node answers", Fix: "check JARVIS_NODES", Since: time.Now()})
	publish(t, st, store.SeverityInfo, "checkpoint", store.SystemDetails{Row: 32})
	publish(t, st, store.SeverityInfo, "rule used", store.RuleDetails{Phase: store.RuleUsed, RuleID: "r_1", Version: 1, Tool: "start_vm",
		Target: "guest/101", Outcome: "ok", UsesLeft: 2})
	publish(t, st, store.SeverityWarning, "rule exhausted", store.RuleDetails{Phase: store.RuleExhausted, RuleID: "r_1", Version: 1,
		Tool: "start_vm", Target: "guest/101"})

	want := []string{"approval.requested", "approval.approved", "tool.unknown", "alert.raised", "alert.resolved", "safety.on",
		"system.failing", "rule.used", "rule.exhausted"}
	waitFor(t, "every message", func() bool { return len(rec.got()) >= len(want) })
	got := rec.got()
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("kinds %v\nwant  %v", kinds(got), want)
	}
	req := got[0]
	if req.Priority != PriorityHigh || req.URL != "https://jarvis.example/#approval/"+apr ||
		!strings.Contains(req.Body, "agent:a asks to run stop_vm (RED)") || !strings.Contains(req.Body, "(in 10m)") {
		t.Errorf("approval request: %+v", req)
	}
	if a := got[3]; a.Priority != PriorityUrgent || a.Title != "Alert: node pve2 is offline" {
		t.Errorf("critical alert: %+v", a)
	}
	for i := 1; i < len(got); i++ {
		if got[i].EventID <= got[i-1].EventID {
			t.Errorf("out of order: %d after %d", got[i].EventID, got[i-1].EventID)
		}
	}
}

// Each channel gets every message: the same message, whichever way it goes.
func TestEveryChannelGetsTheMessage(t *testing.T) {
	st := openStore(t)
	a, b := &recorder{name: "a"}, &recorder{name: "b"}
	startNotifier(t, st, Options{Channels: []Channel{a, b}})
	publish(t, st, store.SeverityWarning, "on", store.SafetyDetails{Switch: "safety.read_only", On: true, By: "operator"})
	waitFor(t, "both channels", func() bool { return len(a.got()) == 1 && len(b.got()) == 1 })
	if a.got()[0].ID != b.got()[0].ID {
		t.Errorf("ids %q and %q", a.got()[0].ID, b.got()[0].ID)
	}
}

// The same news twice within the window is sent once; a change of state is news.
func TestRepeatsAreSentOnce(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	startNotifier(t, st, Options{Channels: []Channel{rec}})
	raised := store.AlertDetails{Key: "storage-full:pve1/local", State: store.AlertRaised}
	exhausted := store.RuleDetails{Phase: store.RuleExhausted, RuleID: "r_1", Version: 1, Tool: "start_vm", Target: "guest/101"}
	publish(t, st, store.SeverityWarning, "storage local on pve1 is 93 % full", raised)
	publish(t, st, store.SeverityWarning, "storage local on pve1 is 93 % full", raised)                   // a repeat
	publish(t, st, store.SeverityWarning, "rule exhausted", exhausted)                                    //
	publish(t, st, store.SeverityWarning, "rule exhausted", exhausted)                                    // a repeat
	publish(t, st, store.SeverityWarning, "rule exhausted", store.RuleDetails{Phase: store.RuleExhausted, // another target
		RuleID: "r_1", Version: 1, Tool: "start_vm", Target: "guest/102"})
	publish(t, st, store.SeverityInfo, "storage back below 90 %", store.AlertDetails{Key: "storage-full:pve1/local", State: store.AlertResolved})
	publish(t, st, store.SeverityWarning, "storage local on pve1 is 95 % full", raised) // raised again after resolving: news
	publish(t, st, store.SeverityWarning, "done", store.SafetyDetails{Switch: "safety.kill_switch", On: true, By: "test"})

	want := []string{"alert.raised", "rule.exhausted", "rule.exhausted", "alert.resolved", "alert.raised", "safety.on"}
	waitFor(t, "the last message", func() bool {
		got := rec.got()
		return len(got) > 0 && got[len(got)-1].Kind == "safety.on"
	})
	if got := kinds(rec.got()); !slices.Equal(got, want) {
		t.Errorf("kinds %v\nwant  %v", got, want)
	}
}

// A second notifier on the same store resumes where the first stopped: no
// repeat, no gap; events from before the first one started are no news.
func TestCursorResumesWithoutRepeats(t *testing.T) {
	st := openStore(t)
	before := publish(t, st, store.SeverityWarning, "before notifications were set up", store.AlertDetails{Key: "old", State: store.AlertRaised})

	first := &recorder{}
	stop := startNotifier(t, st, Options{Channels: []Channel{first}})
	a := publish(t, st, store.SeverityWarning, "A", store.AlertDetails{Key: "a", State: store.AlertRaised})
	waitFor(t, "A", func() bool { return len(first.got()) == 1 })
	stop()
	if first.got()[0].EventID != a.ID {
		t.Fatalf("first got event %d, want %d (event %d came before it started)", first.got()[0].EventID, a.ID, before.ID)
	}

	// While no notifier runs.
	b := publish(t, st, store.SeverityWarning, "B", store.AlertDetails{Key: "b", State: store.AlertRaised})
	c := publish(t, st, store.SeverityWarning, "C", store.AlertDetails{Key: "c", State: store.AlertRaised})

	second := &recorder{}
	log, logs := newLogger()
	startNotifier(t, st, Options{Channels: []Channel{second}, Logger: log})
	d := publish(t, st, store.SeverityWarning, "D", store.AlertDetails{Key: "d", State: store.AlertRaised})
	waitFor(t, "D", func() bool { return len(second.got()) == 3 })
	var ids []uint64
	for _, m := range second.got() {
		ids = append(ids, m.EventID)
	}
	if !slices.Equal(ids, []uint64{b.ID, c.ID, d.ID}) {
		t.Errorf("second got events %v, want %v", ids, []uint64{b.ID, c.ID, d.ID})
	}
	if !strings.Contains(logs.String(), "notifications resume") {
		t.Errorf("resume not logged:\n%s", logs)
	}
}

// After a long stop, what happened more than an hour ago is no news: skipped,
// counted in the log, and the cursor moves past it.
func TestStaleEventsAreSkipped(t *testing.T) {
	st := openStore(t)
	stop := startNotifier(t, st, Options{Channels: []Channel{&recorder{}}})
	stop()
	old := publish(t, st, store.SeverityWarning, "long ago", store.AlertDetails{Key: "x", State: store.AlertRaised})
	publish(t, st, store.SeverityInfo, "snapshot", store.ClusterDetails{What: store.ClusterNodes, Nodes: []store.NodeSnapshot{}})
	last := publish(t, st, store.SeverityWarning, "also long ago", store.AlertDetails{Key: "y", State: store.AlertRaised})

	rec := &recorder{}
	log, logs := newLogger()
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	stop = startNotifier(t, st, Options{Channels: []Channel{rec}, Logger: log, Now: later})
	waitFor(t, "the skip", func() bool { return strings.Contains(logs.String(), "skipped stale notifications") })
	stop()
	if v, _, _ := st.GetPreference(context.Background(), CursorKey); v != strconv.FormatUint(last.ID, 10) {
		t.Errorf("cursor %s, want %d", v, last.ID)
	}
	if len(rec.got()) != 0 {
		t.Errorf("sent %v", kinds(rec.got()))
	}
	if !strings.Contains(logs.String(), "skipped stale notifications") || !strings.Contains(logs.String(), "count=2") {
		t.Errorf("skip not logged with its count (events %d..%d):\n%s", old.ID, last.ID, logs)
	}
}

// No secret reaches a channel or a log line: not one written into a plan or
// a summary, nor the channels' own token, secret or password.
func TestNoSecretReachesAChannelOrTheLog(t *testing.T) {
	const (
		ntfyToken     = "tk_ntfytoken0123456789abcdef"
		webhookSecret = "whsec-0123456789abcdefghij"
		smtpPassword  = "smtp-pass-9876543210"
	)
	planSecrets := []string{"hunter2", "abc123secret", "s3cr3tpw", "zzz999key"}

	ntfy := newReceiver(t, nil)
	hook := newReceiver(t, nil)
	// A server that echoes the request's credentials in its refusal.
	echo := newReceiver(t, func(_ int, r request) (int, string) {
		return 401, "who is " + r.Header.Get("Authorization") + "?"
	})
	cert, pool := selfSigned(t)
	sink := newSMTPSink(t, cert, false, false)

	ntfyCh, _ := NewNtfy(ntfy.URL+"/topic", ntfyToken)
	hookCh, _ := NewWebhook(hook.URL+"/hook", webhookSecret)
	echoCh, _ := NewNtfy(echo.URL+"/topic", ntfyToken)
	mailCh, err := NewEmail(SMTPConfig{Host: "127.0.0.1", Port: sink.addr.Port, From: "jarvis@home.example",
		To: []string{"me@home.example"}, TLS: SMTPPlain})
	if err != nil {
		t.Fatal(err)
	}
	// A login refused by a server that echoes the credentials: the error must not say the password.
	loginCh, err := NewEmail(SMTPConfig{Host: "127.0.0.1", Port: echoingSMTP(t, cert), From: "jarvis@home.example",
		To: []string{"me@home.example"}, TLS: SMTPImplicitTLS, Username: "jarvis", Password: smtpPassword, TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}

	st := openStore(t)
	log, logs := newLogger()
	startNotifier(t, st, Options{Channels: []Channel{ntfyCh, hookCh, echoCh, mailCh, loginCh}, Logger: log})
	plan := "run `mysql --password=hunter2 -e 'drop table x'`, fetch https://files.example/a.iso?token=abc123secret, push to https://admin:s3cr3tpw@git.example/r"
	publish(t, st, store.SeverityWarning, "approval requested", store.ApprovalDetails{Phase: store.ApprovalRequested,
		ApprovalID: "apr_0123456789abcdef", Principal: "agent:a", Tool: "execute_ssh", Tier: "red", Plan: plan, ExpiresAt: time.Now().Add(time.Minute)})
	publish(t, st, store.SeverityCritical, "backup job failed: API_KEY=zzz999key rejected", store.AlertDetails{Key: "backup"})

	waitFor(t, "every channel to deliver or give up", func() bool {
		return len(ntfy.requests()) == 2 && len(hook.requests()) == 2 && len(sink.mails()) == 2 &&
			len(echo.requests()) == 2 && strings.Count(logs.String(), "not retrying") == 4
	})

	var delivered strings.Builder
	for _, r := range append(ntfy.requests(), hook.requests()...) {
		delivered.Write(r.Body)
		for _, h := range []string{"Title", "Tags", "Click", EventHeader} {
			delivered.WriteString(r.Header.Get(h))
		}
	}
	for _, m := range sink.mails() {
		delivered.Write(m.data)
	}
	if !strings.Contains(delivered.String(), "execute_ssh") || !strings.Contains(delivered.String(), "[redacted]") {
		t.Fatalf("the messages did not arrive as expected:\n%s", delivered.String())
	}
	if !strings.Contains(logs.String(), "refused the login") {
		t.Errorf("the refused login was not logged:\n%s", logs)
	}
	plainAuth := base64.StdEncoding.EncodeToString([]byte("\x00jarvis\x00" + smtpPassword))
	for _, secret := range append(planSecrets, ntfyToken, webhookSecret, smtpPassword, plainAuth) {
		if strings.Contains(delivered.String(), secret) {
			t.Errorf("%q reached a channel", secret)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("%q reached the log", secret)
		}
	}
}

// A channel that cannot be reached is logged by its host alone: no log line
// shows the ntfy topic or the webhook's path or query.
func TestLogNamesTheChannelsHostOnly(t *testing.T) {
	addr := closedAddr(t)
	st := openStore(t)
	log, logs := newLogger()
	startNotifier(t, st, Options{Channels: secretChannels(t, "http://"+addr), Logger: log})
	publish(t, st, store.SeverityCritical, "node pve2 is offline", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertRaised})
	waitFor(t, "both channels to give up", func() bool { return strings.Count(logs.String(), "notification not delivered") == 2 })
	text := logs.String()
	for _, want := range []string{"ntfy at " + addr, "webhook at " + addr, "trying again"} {
		if !strings.Contains(text, want) {
			t.Errorf("the log lacks %q:\n%s", want, text)
		}
	}
	assertNoURLSecret(t, "the log", text)
}

func TestNewNeedsAStoreAndAChannel(t *testing.T) {
	if _, err := New(Options{Channels: []Channel{&recorder{}}}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := New(Options{Store: openStore(t)}); err == nil {
		t.Error("no channel accepted")
	}
}

// Close lets queued messages go out before it returns.
func TestCloseDrains(t *testing.T) {
	st := openStore(t)
	slow := &recorder{fail: func(Message) error { time.Sleep(5 * time.Millisecond); return nil }}
	stop := startNotifier(t, st, Options{Channels: []Channel{slow}})
	for i := range 5 {
		publish(t, st, store.SeverityWarning, "alert "+strconv.Itoa(i), store.AlertDetails{Key: strconv.Itoa(i), State: store.AlertRaised})
	}
	waitFor(t, "the first message", func() bool { return len(slow.got()) > 0 })
	last, _ := st.LastEventID(context.Background())
	waitFor(t, "the notifier to read every event", func() bool {
		v, _, _ := st.GetPreference(context.Background(), CursorKey)
		return v == strconv.FormatUint(last, 10)
	})
	stop()
	if n := len(slow.got()); n != 5 {
		t.Errorf("%d of 5 sent before Close returned", n)
	}
}

// runUntilStopped runs n on a context the test ends with stop, which, as
// serve's does, ends Run, waits for it and drains. Run has read its starting
// point when it returns.
func runUntilStopped(t *testing.T, n *Notifier, st *store.Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			n.Close()
		}
	}
	t.Cleanup(stop)
	waitFor(t, "the notifier to store its cursor", func() bool {
		_, found, _ := st.GetPreference(context.Background(), CursorKey)
		return found
	})
	return stop
}

// What is published after Run's context has ended but before the stop is
// over — the end of calls the shutdown cut short — is still sent, and the
// cursor moves past it: at the next start, perhaps hours later, it would be
// stale and lost.
func TestStopSendsWhatWasPublishedAsItStopped(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	n, err := New(Options{Store: st, Channels: []Channel{rec}, Retry: fastRetry, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	late := store.Event{Type: store.EventTool, Severity: store.SeverityWarning, Source: "test", Summary: "agent stop_vm ended (unknown)",
		Details: store.EncodeDetails(store.ToolDetails{Phase: store.ToolEnded, Principal: "agent:a", Tool: "stop_vm",
			Outcome: store.OutcomeUnknown, Reason: "Jarvis stopped before the answer"})}
	var lateErr error
	n.stopping = func() { lateErr = st.Publish(context.Background(), &late) } // Run's context has ended
	stop := runUntilStopped(t, n, st)
	stop()
	if lateErr != nil {
		t.Fatal(lateErr)
	}
	got := rec.got()
	if len(got) != 1 || got[0].EventID != late.ID || got[0].Kind != "tool.unknown" {
		t.Fatalf("sent %+v, want the tool.unknown of event %d", got, late.ID)
	}
	if v, _, _ := st.GetPreference(context.Background(), CursorKey); v != strconv.FormatUint(late.ID, 10) {
		t.Errorf("cursor %s, want %d", v, late.ID)
	}
}

// twoHandles opens two stores on one fresh database, as two processes do.
func twoHandles(t *testing.T) (*store.Store, *store.Store) {
	t.Helper()
	target := storetest.Target(t)
	open := func() *store.Store {
		st, err := store.Open(target, store.Options{AuditKey: []byte(strings.Repeat("k", 32))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	return open(), open()
}

// An event the notifier was not woken for (another process wrote it, or the
// wake-up lost the race with the stop) is read once more as Run ends.
func TestStopReadsWhatItWasNotWokenFor(t *testing.T) {
	st, other := twoHandles(t) // other is another process's: its events wake nobody here
	rec := &recorder{}
	n, err := New(Options{Store: st, Channels: []Channel{rec}, Retry: fastRetry, Poll: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, n, st)
	ev := publish(t, other, store.SeverityCritical, "node pve2 is offline", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertRaised})
	stop()
	if got := rec.got(); len(got) != 1 || got[0].EventID != ev.ID {
		t.Fatalf("sent %+v, want the alert of event %d", got, ev.ID)
	}
}

// A notifier stopped because its replica lost the notifier lease reads
// nothing more and leaves the cursor alone: the next holder goes on from the
// stored cursor, and would send again what this one read on its way out.
func TestStopOnALostLeaseLeavesTheRestToTheNextHolder(t *testing.T) {
	st, other := twoHandles(t) // other is another process's: its events wake nobody here
	rec := &recorder{}
	n, err := New(Options{Store: st, Channels: []Channel{rec}, Retry: fastRetry, Poll: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	var cursor string
	waitFor(t, "the notifier to store its cursor", func() bool {
		v, found, _ := st.GetPreference(context.Background(), CursorKey)
		cursor = v
		return found
	})
	publish(t, other, store.SeverityCritical, "node pve2 is offline", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertRaised})
	cancel(store.ErrLeaseLost)
	<-done
	n.Close()
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("sent %+v after the lease was lost; the next holder sends it", got)
	}
	if v, _, _ := st.GetPreference(context.Background(), CursorKey); v != cursor {
		t.Errorf("cursor moved from %s to %s after the lease was lost", cursor, v)
	}
}

// A stop slower than a lease leaves a cursor another replica moved on
// meanwhile where it is: it never goes back.
func TestStopNeverMovesTheCursorBack(t *testing.T) {
	st, other := twoHandles(t)
	rec := &recorder{}
	n, err := New(Options{Store: st, Channels: []Channel{rec}, Retry: fastRetry, Poll: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, n, st)
	// An event this one reads as it stops, and the next holder, which went
	// on far ahead meanwhile.
	publish(t, other, store.SeverityCritical, "node pve2 is offline", store.AlertDetails{Key: "node-offline:pve2", State: store.AlertRaised})
	if err := other.SetPreference(context.Background(), CursorKey, "1000000"); err != nil {
		t.Fatal(err)
	}
	stop()
	if v, _, _ := st.GetPreference(context.Background(), CursorKey); v != "1000000" {
		t.Errorf("cursor %s after the stop, want the next holder's 1000000", v)
	}
}

// A cursor past the newest event (a new database, pruned events) is set
// back to the newest at start, although cursors otherwise only move on.
func TestStartSetsACursorPastTheFeedBack(t *testing.T) {
	st := openStore(t)
	ev := publish(t, st, store.SeverityInfo, "an event before the start", store.AlertDetails{Key: "k", State: store.AlertRaised})
	if err := st.SetPreference(context.Background(), CursorKey, "1000000"); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Store: st, Channels: []Channel{&recorder{}}, Retry: fastRetry, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, n, st)
	waitFor(t, "the cursor set back to the newest event", func() bool {
		v, _, _ := st.GetPreference(context.Background(), CursorKey)
		return v == strconv.FormatUint(ev.ID, 10)
	})
}

// echoingSMTP is an SMTP server over TLS on 127.0.0.1 that offers a login and
// refuses every one, quoting the credentials it got, encoded and decoded.
func echoingSMTP(t *testing.T, cert *tls.Certificate) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	serve := func(conn net.Conn) {
		defer conn.Close()
		tp := textproto.NewConn(conn)
		_ = tp.PrintfLine("220 localhost ESMTP")
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "EHLO", "HELO":
				_ = tp.PrintfLine("250-localhost")
				_ = tp.PrintfLine("250 AUTH PLAIN")
			case "AUTH":
				_, b64, _ := strings.Cut(arg, " ")
				plain, _ := base64.StdEncoding.DecodeString(b64)
				_ = tp.PrintfLine("535 5.7.8 refused %s (%s)", b64, strings.ReplaceAll(string(plain), "\x00", " "))
			case "QUIT":
				_ = tp.PrintfLine("221 bye")
				return
			default:
				_ = tp.PrintfLine("502 not here")
			}
		}
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
