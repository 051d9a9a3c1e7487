package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/jarvis-homelab/jarvis/notify"
	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// Every wrong notification variable is named, with what to write instead,
// and no secret is echoed.
func TestNotifyProblemsNameEachVariable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // each in the error
		not  []string // none in the error
	}{
		{"ntfy URL not http", map[string]string{"JARVIS_NOTIFY_NTFY_URL": "ntfy.sh/topic"},
			[]string{"JARVIS_NOTIFY_NTFY_URL", "http:// or https://"}, nil},
		{"ntfy URL without topic", map[string]string{"JARVIS_NOTIFY_NTFY_URL": "https://ntfy.sh/"},
			[]string{"JARVIS_NOTIFY_NTFY_URL=https://ntfy.sh/…: must end with the topic name"}, nil},
		{"ntfy URL shown up to its host", map[string]string{"JARVIS_NOTIFY_NTFY_URL": "https://ntfy.sh/secret-topic?auth=tk_abc"},
			[]string{"JARVIS_NOTIFY_NTFY_URL", "without a login, query"}, []string{"secret-topic", "tk_abc"}},
		{"ntfy token without URL", map[string]string{"JARVIS_NOTIFY_NTFY_TOKEN": "tk_0123456789"},
			[]string{"JARVIS_NOTIFY_NTFY_TOKEN is set without JARVIS_NOTIFY_NTFY_URL"}, []string{"tk_0123456789"}},
		{"ntfy token file missing", map[string]string{"JARVIS_NOTIFY_NTFY_URL": "https://ntfy.sh/t", "JARVIS_NOTIFY_NTFY_TOKEN_FILE": missing},
			[]string{"JARVIS_NOTIFY_NTFY_TOKEN_FILE=" + missing + ": no such file"}, nil},
		{"webhook without secret", map[string]string{"JARVIS_NOTIFY_WEBHOOK_URL": "https://hooks.example/jarvis"},
			[]string{"JARVIS_NOTIFY_WEBHOOK_SECRET: required with JARVIS_NOTIFY_WEBHOOK_URL", "openssl rand -hex 32"}, nil},
		{"webhook secret too short", map[string]string{"JARVIS_NOTIFY_WEBHOOK_URL": "https://hooks.example/jarvis",
			"JARVIS_NOTIFY_WEBHOOK_SECRET": "short-secret"},
			[]string{"JARVIS_NOTIFY_WEBHOOK_SECRET: must be at least 16 characters"}, []string{"short-secret"}},
		{"webhook placeholder secret", map[string]string{"JARVIS_NOTIFY_WEBHOOK_URL": "https://hooks.example/jarvis",
			"JARVIS_NOTIFY_WEBHOOK_SECRET": "change-me-to-a-long-random-string"},
			[]string{"JARVIS_NOTIFY_WEBHOOK_SECRET: is a placeholder"}, nil},
		{"webhook secret without URL", map[string]string{"JARVIS_NOTIFY_WEBHOOK_SECRET": "0123456789abcdef0123"},
			[]string{"JARVIS_NOTIFY_WEBHOOK_SECRET is set without JARVIS_NOTIFY_WEBHOOK_URL"}, []string{"0123456789abcdef0123"}},
		{"SMTP settings without host", map[string]string{"JARVIS_NOTIFY_SMTP_FROM": "jarvis@home.example"},
			[]string{"JARVIS_NOTIFY_SMTP_HOST: required"}, nil},
		{"SMTP host without sender and recipients", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com"},
			[]string{"JARVIS_NOTIFY_SMTP_FROM=\"\": must be an e-mail address", "JARVIS_NOTIFY_SMTP_TO: name at least one recipient"}, nil},
		{"SMTP recipient not an address", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com",
			"JARVIS_NOTIFY_SMTP_FROM": "jarvis@home.example", "JARVIS_NOTIFY_SMTP_TO": "me@home.example, nobody"},
			[]string{`JARVIS_NOTIFY_SMTP_TO: "nobody" is not an e-mail address`}, nil},
		{"SMTP TLS unknown", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com", "JARVIS_NOTIFY_SMTP_FROM": "a@b.example",
			"JARVIS_NOTIFY_SMTP_TO": "c@d.example", "JARVIS_NOTIFY_SMTP_TLS": "ssl"},
			[]string{`JARVIS_NOTIFY_SMTP_TLS="ssl": use starttls (port 587), tls (port 465) or none`}, nil},
		{"SMTP login without TLS", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "192.168.1.2", "JARVIS_NOTIFY_SMTP_FROM": "a@b.example",
			"JARVIS_NOTIFY_SMTP_TO": "c@d.example", "JARVIS_NOTIFY_SMTP_TLS": "none", "JARVIS_NOTIFY_SMTP_USERNAME": "jarvis",
			"JARVIS_NOTIFY_SMTP_PASSWORD": "pw-0123456789"},
			[]string{"JARVIS_NOTIFY_SMTP_USERNAME/_PASSWORD: a login needs starttls or tls"}, []string{"pw-0123456789"}},
		{"SMTP port that does not go with the TLS", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com",
			"JARVIS_NOTIFY_SMTP_FROM": "a@b.example", "JARVIS_NOTIFY_SMTP_TO": "c@d.example", "JARVIS_NOTIFY_SMTP_TLS": "tls",
			"JARVIS_NOTIFY_SMTP_PORT": "587"},
			[]string{"JARVIS_NOTIFY_SMTP_PORT=587: does not go with JARVIS_NOTIFY_SMTP_TLS=tls"}, nil},
		{"SMTP port not a number", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com",
			"JARVIS_NOTIFY_SMTP_FROM": "a@b.example", "JARVIS_NOTIFY_SMTP_TO": "c@d.example", "JARVIS_NOTIFY_SMTP_PORT": "smtp"},
			[]string{`JARVIS_NOTIFY_SMTP_PORT="smtp": must be a whole number`}, []string{"between 1 and 65535"}},
		{"SMTP password file missing", map[string]string{"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com",
			"JARVIS_NOTIFY_SMTP_FROM": "a@b.example", "JARVIS_NOTIFY_SMTP_TO": "c@d.example", "JARVIS_NOTIFY_SMTP_USERNAME": "u",
			"JARVIS_NOTIFY_SMTP_PASSWORD_FILE": missing},
			[]string{"JARVIS_NOTIFY_SMTP_PASSWORD_FILE=" + missing}, nil},
		{"rate zero", map[string]string{"JARVIS_NOTIFY_RATE_PER_MIN": "0"},
			[]string{"JARVIS_NOTIFY_RATE_PER_MIN=0: must be above 0"}, nil},
		{"rate not a number", map[string]string{"JARVIS_NOTIFY_RATE_PER_MIN": "lots"},
			[]string{`JARVIS_NOTIFY_RATE_PER_MIN="lots": must be a number`}, []string{"must be above 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := loadNotifyEnv()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(err.Error(), not) {
					t.Errorf("error says %q:\n%v", not, err)
				}
			}
		})
	}
}

func TestNotifyEnvAcceptsEachChannel(t *testing.T) {
	clearEnv(t)
	secretFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(secretFile, []byte("app-password-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"JARVIS_NOTIFY_NTFY_URL": "https://ntfy.sh/jarvis-7f3a9c", "JARVIS_NOTIFY_NTFY_TOKEN": "tk_0123456789",
		"JARVIS_NOTIFY_WEBHOOK_URL": "https://hooks.example/jarvis", "JARVIS_NOTIFY_WEBHOOK_SECRET": "0123456789abcdef0123",
		"JARVIS_NOTIFY_SMTP_HOST": "smtp.example.com", "JARVIS_NOTIFY_SMTP_USERNAME": "jarvis@example.com",
		"JARVIS_NOTIFY_SMTP_PASSWORD_FILE": secretFile, "JARVIS_NOTIFY_SMTP_FROM": "Jarvis <jarvis@example.com>",
		"JARVIS_NOTIFY_SMTP_TO": "me@example.com, ops@example.com", "JARVIS_NOTIFY_RATE_PER_MIN": "6",
	} {
		t.Setenv(k, v)
	}
	n, err := loadNotifyEnv()
	if err != nil {
		t.Fatal(err)
	}
	if n.SMTPPassword != "app-password-123" || n.NotifyRatePerMin != 6 || len(n.SMTPTo) != 2 || n.SMTPTLS != "starttls" {
		t.Errorf("parsed: %+v", n)
	}
	channels, err := n.notifyChannels()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range channels {
		names = append(names, ch.Name())
	}
	if strings.Join(names, ",") != "ntfy,webhook,email" {
		t.Errorf("channels %v", names)
	}

	clearEnv(t)
	n, err = loadNotifyEnv()
	if err != nil || n.notifyConfigured() {
		t.Errorf("nothing set: %v, configured %v", err, n.notifyConfigured())
	}
}

func TestNotifyTestCommand(t *testing.T) {
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Title") != "Jarvis test notification" || r.Header.Get("Click") != "http://127.0.0.1:4000/" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer ntfy.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if notify.VerifySignature("the-receivers-own-secret", r.Header.Get(notify.SignatureHeader), body, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer hook.Close()

	n := &NotifyEnv{NtfyURL: ntfy.URL + "/jarvis", WebhookURL: hook.URL + "/hook", WebhookSecret: "0123456789abcdef0123", NotifyRatePerMin: 20}
	var stdout, stderr bytes.Buffer
	err := runNotifyTest(context.Background(), n, "http://127.0.0.1:4000/", &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("err = %v", err)
	}
	out := stdout.String()
	if !strings.Contains(out, "ntfy: sent\n") || !strings.Contains(out, "webhook: failed: ") ||
		!strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, "JARVIS_NOTIFY_WEBHOOK_SECRET") {
		t.Errorf("stdout:\n%s", out)
	}
	if strings.Contains(out, "0123456789abcdef0123") {
		t.Errorf("the secret was printed:\n%s", out)
	}

	stdout.Reset()
	n.WebhookSecret = "the-receivers-own-secret"
	if err := runNotifyTest(context.Background(), n, "http://127.0.0.1:4000/", &stdout, &stderr); err != nil {
		t.Errorf("both fine: %v\n%s", err, stdout.String())
	}
	if stdout.String() != "ntfy: sent\nwebhook: sent\n" {
		t.Errorf("stdout %q", stdout.String())
	}
}

// A channel that cannot be reached is reported by its host alone: the ntfy
// topic, the webhook's path and query and the SMTP password stay unsaid.
func TestNotifyTestHidesTheChannelsAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)

	n := &NotifyEnv{NtfyURL: "http://" + addr + "/jarvis-secret-topic-7f3a9c",
		WebhookURL: "http://" + addr + "/services/T0001/B0002/hookpathsecret?token=qtok-0123456789secret", WebhookSecret: "0123456789abcdef0123",
		SMTPHost: host, SMTPPort: portN, SMTPTLS: "tls", SMTPUsername: "jarvis", SMTPPassword: "smtp-pass-9876543210",
		SMTPFrom: "jarvis@home.example", SMTPTo: []string{"me@home.example"}, NotifyRatePerMin: 20}
	var stdout, stderr bytes.Buffer
	err = runNotifyTest(context.Background(), n, "http://127.0.0.1:4000/", &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "3 of 3") {
		t.Errorf("err = %v", err)
	}
	out := stdout.String() + stderr.String() + err.Error()
	for _, want := range []string{"ntfy: failed: ntfy at " + addr, "webhook: failed: webhook at " + addr, "email: failed: ", "refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"jarvis-secret-topic-7f3a9c", "hookpathsecret", "services/T0001", "qtok-0123456789secret", "token=", "smtp-pass-9876543210"} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows %q:\n%s", secret, out)
		}
	}
}

func TestNotifyTestWithoutChannels(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runNotifyTest(context.Background(), &NotifyEnv{}, "", &stdout, &stderr)
	if err == nil {
		t.Error("nothing configured, and no error")
	}
	for _, want := range []string{"JARVIS_NOTIFY_NTFY_URL", "JARVIS_NOTIFY_WEBHOOK_URL", "JARVIS_NOTIFY_WEBHOOK_SECRET", "JARVIS_NOTIFY_SMTP_HOST"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
		}
	}
}

// serve's notifier: an approval request published to the store reaches ntfy
// with a link into the console.
func TestNotifyStartNotifier(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
	}))
	defer ntfy.Close()

	st, err := store.Open(storetest.Target(t), store.Options{AuditKey: safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &app{cfg: &Config{Port: 4000, ListenAddr: "0.0.0.0", PublicURL: "https://jarvis.home.example"}, store: st,
		logger: slog.New(slog.DiscardHandler)}

	off := a.startNotifier(context.Background(), &NotifyEnv{})
	off()
	if _, found, _ := st.GetPreference(context.Background(), notify.CursorKey); found {
		t.Error("a notifier ran with no channel configured")
	}

	stop := a.startNotifier(context.Background(), &NotifyEnv{NtfyURL: ntfy.URL + "/jarvis", NotifyRatePerMin: 20})
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for { // the notifier starts at the feed's head: wait until it has read it
		if _, found, _ := st.GetPreference(context.Background(), notify.CursorKey); found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier never started")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ev := store.Event{Type: store.EventApproval, Severity: store.SeverityWarning, Summary: "approval requested",
		Details: store.EncodeDetails(store.ApprovalDetails{Phase: store.ApprovalRequested, ApprovalID: "apr_0123456789abcdef",
			Principal: "agent:a", Tool: "stop_vm", Tier: "red", Plan: "Hard stop of VM 101", ExpiresAt: time.Now().Add(10 * time.Minute)})}
	if err := st.Publish(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if h := got[0]; h.Get("Click") != "https://jarvis.home.example/#approval/apr_0123456789abcdef" || h.Get("Priority") != "4" {
		t.Errorf("headers %v", h)
	}
	stop()
	stop() // twice is safe
}

// What is published as the notifier stops — the end of calls the shutdown
// cut short — is still sent before stop returns.
func TestNotifyStopSendsTheLastEvents(t *testing.T) {
	ntfyURL, sent := ntfyTitles(t)
	st, err := store.Open(storetest.Target(t), store.Options{AuditKey: safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &app{cfg: &Config{Port: 4000, ListenAddr: "0.0.0.0"}, store: st, logger: slog.New(slog.DiscardHandler)}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := a.startNotifier(ctx, &NotifyEnv{NtfyURL: ntfyURL + "/jarvis", NotifyRatePerMin: 20})
	deadline := time.Now().Add(10 * time.Second)
	for { // the notifier starts at the feed's head: wait until it has read it
		if _, found, _ := st.GetPreference(context.Background(), notify.CursorKey); found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier never started")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ev := store.Event{Type: store.EventTool, Severity: store.SeverityWarning, Summary: "agent stop_vm ended (unknown)",
		Details: store.EncodeDetails(store.ToolDetails{Phase: store.ToolEnded, Principal: "agent:a", Tool: "stop_vm",
			Outcome: store.OutcomeUnknown, Reason: "Jarvis stopped before the answer"})}
	if err := st.Publish(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	cancel() // at once: the notifier may not have read it yet
	stop()
	if got := sent(); len(got) != 1 || !strings.Contains(got[0], "stop_vm") {
		t.Errorf("sent %q, want the unknown end of stop_vm", got)
	}
	if v, _, _ := st.GetPreference(context.Background(), notify.CursorKey); v != strconv.FormatUint(ev.ID, 10) {
		t.Errorf("cursor %s, want %d", v, ev.ID)
	}
}

// ntfyTitles is an ntfy server on 127.0.0.1 that keeps the title of each
// message; sent lists them so far.
func ntfyTitles(t *testing.T) (url string, sent func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Title"))
		mu.Unlock()
	}))
	t.Cleanup(ntfy.Close)
	return ntfy.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// loadNotifyEnv reads only the notification settings and lists their
// problems as LoadConfig does once Config embeds NotifyEnv.
func loadNotifyEnv() (*NotifyEnv, error) {
	var n NotifyEnv
	bad, problems := map[string]bool{}, []string(nil)
	if err := env.Parse(&n); err != nil {
		// env names the Go field; until Config embeds NotifyEnv the
		// variable is found by notifyVarOf.
		bad, problems = explainAll(err, notifyVarOf)
	}
	problems = append(problems, n.notifyProblems(bad)...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("configuration is not usable:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return &n, nil
}

// notifyVarOf maps a NotifyEnv field name to its environment variable.
func notifyVarOf(field string) string {
	if f, ok := reflect.TypeFor[NotifyEnv]().FieldByName(field); ok {
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			return name
		}
	}
	return field
}
