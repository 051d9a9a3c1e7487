package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is what an HTTP receiver got.
type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// receiver is an HTTP server on 127.0.0.1 that keeps what it gets and
// answers with answer (200 when nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	answer func(n int, r request) (int, string) // n counts from 1
}

func newReceiver(t *testing.T, answer func(n int, r request) (int, string)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, req)
		n := len(rc.got)
		rc.mu.Unlock()
		status, text := http.StatusOK, `{"id":"x"}`
		if rc.answer != nil {
			status, text = rc.answer(n, req)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

func sampleMessage() Message {
	return Message{ID: "event-7", EventID: 7, Kind: "approval.requested", Title: "Approval needed: stop_vm — VM 101 «web»",
		Body: "agent:a asks to run stop_vm (RED).\nPlan: Hard stop of VM 101", Priority: PriorityHigh,
		Tags: []string{"question", "approval"}, URL: "https://jarvis.example/#approval/apr_0123456789abcdef",
		Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func TestNtfySendsTheMessageWithItsHeaders(t *testing.T) {
	rc := newReceiver(t, nil)
	ch, err := NewNtfy(rc.URL+"/jarvis-topic_1", "tk_abcdefghijklmnopqrstuvwxyz123")
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMessage()
	if err := ch.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	title, err := new(mime.WordDecoder).DecodeHeader(r.Header.Get("Title"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"method": http.MethodPost, "path": "/jarvis-topic_1", "body": m.Body, "Title": m.Title,
		"Priority": "4", "Tags": "question,approval", "Click": m.URL, "Authorization": "Bearer tk_abcdefghijklmnopqrstuvwxyz123",
	} {
		have := r.Header.Get(name)
		switch name {
		case "method":
			have = r.Method
		case "path":
			have = r.Path
		case "body":
			have = string(r.Body)
		case "Title":
			have = title
		}
		if have != want {
			t.Errorf("%s = %q, want %q", name, have, want)
		}
	}
	if h := r.Header.Get("Title"); strings.ContainsFunc(h, func(r rune) bool { return r > '~' }) {
		t.Errorf("Title header is not ASCII: %q", h)
	}
}

func TestNtfyWithoutTokenSendsNoAuthorization(t *testing.T) {
	rc := newReceiver(t, nil)
	ch, err := NewNtfy(rc.URL+"/topic", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
	if a := rc.requests()[0].Header.Get("Authorization"); a != "" {
		t.Errorf("Authorization %q", a)
	}
}

func TestNtfyRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		url, token string
		setting    string
	}{
		{"ftp://ntfy.sh/topic", "", "url"},
		{"https://ntfy.sh/", "", "url"},
		{"https://ntfy.sh/bad.topic", "", "url"},
		{"https://ntfy.sh/topic?auth=abc", "", "url"},
		{"https://user:pw@ntfy.sh/topic", "", "url"},
		{"https://ntfy.sh/topic", "tk_with space", "token"},
	} {
		_, err := NewNtfy(tc.url, tc.token)
		se := SettingErrors(err)
		if len(se) == 0 || se[0].Setting != tc.setting {
			t.Errorf("NewNtfy(%q, %q) = %v, want a %s problem", tc.url, tc.token, err, tc.setting)
		}
		if err != nil && (strings.Contains(err.Error(), "auth=abc") || strings.Contains(err.Error(), "pw@")) {
			t.Errorf("error repeats the URL: %v", err)
		}
	}
	if _, err := NewNtfy("https://ntfy.example/sub/path/jarvis", "tk_x"); err != nil {
		t.Errorf("a self-hosted topic under a path: %v", err)
	}
}

// What each answer means: 4xx other than 408 and 429 is permanent and says
// what to fix; the rest may pass later.
func TestHTTPAnswersAreClassified(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
		fix       string
	}{
		{http.StatusUnauthorized, true, "JARVIS_NOTIFY_NTFY_TOKEN"},
		{http.StatusForbidden, true, "write access"},
		{http.StatusNotFound, true, "JARVIS_NOTIFY_NTFY_URL"},
		{http.StatusBadRequest, true, "check JARVIS_NOTIFY_NTFY_URL"},
		{http.StatusFound, true, "redirects"},
		{http.StatusRequestTimeout, false, ""},
		{http.StatusTooManyRequests, false, "JARVIS_NOTIFY_RATE_PER_MIN"},
		{http.StatusServiceUnavailable, false, "tries again"},
	} {
		rc := newReceiver(t, func(int, request) (int, string) { return tc.status, `{"error":"no"}` })
		ch, _ := NewNtfy(rc.URL+"/topic", "")
		err := ch.Send(context.Background(), sampleMessage())
		var de *DeliveryError
		if !errors.As(err, &de) {
			t.Fatalf("%d: error %v is not a DeliveryError", tc.status, err)
		}
		if de.Permanent != tc.permanent || !strings.Contains(de.Fix, tc.fix) || !strings.Contains(err.Error(), http.StatusText(tc.status)) {
			t.Errorf("%d: permanent %v fix %q (%v); want %v and %q", tc.status, de.Permanent, de.Fix, err, tc.permanent, tc.fix)
		}
	}
}

func TestUnreachableReceiverIsTemporary(t *testing.T) {
	rc := newReceiver(t, nil)
	url := rc.URL
	rc.Close()
	ch, _ := NewNtfy(url+"/topic", "")
	err := ch.Send(context.Background(), sampleMessage())
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "can be reached") {
		t.Errorf("err = %v", err)
	}
}

// closedAddr is a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Secrets a channel's address carries: an ntfy topic, a webhook's path and
// the token in its query.
const (
	secretTopic     = "jarvis-secret-topic-7f3a9c"
	secretHookPath  = "/services/T0001/B0002/hookpathsecret"
	secretHookToken = "qtok-0123456789secret"
)

// secretURLParts are what no error or log line may show of those addresses.
var secretURLParts = []string{secretTopic, "hookpathsecret", "services/T0001", secretHookToken, "token="}

// secretChannels are an ntfy topic and a webhook at base (http://host:port).
func secretChannels(t *testing.T, base string) []Channel {
	t.Helper()
	ntfy, err := NewNtfy(base+"/"+secretTopic, "")
	if err != nil {
		t.Fatal(err)
	}
	hook, err := NewWebhook(base+secretHookPath+"?token="+secretHookToken, "0123456789abcdef-webhook")
	if err != nil {
		t.Fatal(err)
	}
	return []Channel{ntfy, hook}
}

func assertNoURLSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, secret := range secretURLParts {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows %q of the channel's address:\n%s", what, secret, text)
		}
	}
}

// A channel that cannot be reached names its host, never the address's path
// or query: Go's errors quote the whole URL, and an ntfy topic or a webhook's
// path is as good as a password.
func TestUnreachableErrorsNameTheHostOnly(t *testing.T) {
	addr := closedAddr(t)
	for _, ch := range secretChannels(t, "http://"+addr) {
		err := ch.Send(context.Background(), sampleMessage())
		if err == nil || IsPermanent(err) {
			t.Fatalf("%s: err = %v", ch.Name(), err)
		}
		if want := ch.Name() + " at " + addr + ": "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error does not start with %q: %v", ch.Name(), want, err)
		}
		if !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "can be reached") {
			t.Errorf("%s: error does not say why or what to check: %v", ch.Name(), err)
		}
		assertNoURLSecret(t, ch.Name()+"'s error", err.Error())
	}

	// Nor when the attempt times out, or the certificate is not trusted.
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	for _, ch := range secretChannels(t, slow.URL) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := ch.Send(ctx, sampleMessage())
		cancel()
		if err == nil {
			t.Fatalf("%s: no error from a server that never answers", ch.Name())
		}
		assertNoURLSecret(t, ch.Name()+"'s timeout", err.Error())
	}
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	for _, ch := range secretChannels(t, tlsSrv.URL) {
		err := ch.Send(context.Background(), sampleMessage())
		if !IsPermanent(err) || !strings.Contains(err.Error(), "not trusted") {
			t.Errorf("%s: untrusted certificate: %v", ch.Name(), err)
		}
		assertNoURLSecret(t, ch.Name()+"'s certificate error", err.Error())
	}
}

// A receiver that echoes the request's path and query in its refusal (as
// many frameworks do: "Cannot POST /hooks/…") does not put them in Jarvis's errors.
func TestEchoedAddressIsScrubbed(t *testing.T) {
	rc := newReceiver(t, func(_ int, r request) (int, string) {
		return http.StatusNotFound, "Cannot POST " + r.Path + "?" + r.Query + " (topic " + strings.TrimPrefix(r.Path, "/") + ")"
	})
	for _, ch := range secretChannels(t, rc.URL) {
		err := ch.Send(context.Background(), sampleMessage())
		if !IsPermanent(err) || !strings.Contains(err.Error(), "404 Not Found") || !strings.Contains(err.Error(), "Cannot POST") {
			t.Errorf("%s: err = %v", ch.Name(), err)
		}
		assertNoURLSecret(t, ch.Name()+"'s error", err.Error())
	}
}

// A receiver that echoes what it got must not put the token in Jarvis's errors.
func TestErrorsNeverCarryTheToken(t *testing.T) {
	const token = "tk_0123456789secrettoken"
	rc := newReceiver(t, func(_ int, r request) (int, string) {
		return http.StatusUnauthorized, "bad credentials: " + r.Header.Get("Authorization")
	})
	ch, _ := NewNtfy(rc.URL+"/topic", token)
	err := ch.Send(context.Background(), sampleMessage())
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("err = %v", err)
	}
}

// The webhook's receiver checks the signature as the README tells people to.
func TestWebhookIsSignedAndVerifies(t *testing.T) {
	const secret = "0123456789abcdef-webhook"
	type verified struct {
		body map[string]any
		err  error
	}
	var mu sync.Mutex
	var results []verified
	rc := newReceiver(t, func(_ int, r request) (int, string) {
		err := VerifySignature(secret, r.Header.Get(SignatureHeader), r.Body, time.Now(), 5*time.Minute)
		var body map[string]any
		_ = json.Unmarshal(r.Body, &body)
		mu.Lock()
		results = append(results, verified{body, err})
		mu.Unlock()
		if err != nil {
			return http.StatusUnauthorized, err.Error()
		}
		return http.StatusNoContent, ""
	})
	ch, err := NewWebhook(rc.URL+"/hooks/jarvis", secret)
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMessage()
	if err := ch.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	if results[0].err != nil {
		t.Fatalf("receiver: %v", results[0].err)
	}
	if ct, ev := r.Header.Get("Content-Type"), r.Header.Get(EventHeader); ct != "application/json" || ev != m.Kind {
		t.Errorf("Content-Type %q, %s %q", ct, EventHeader, ev)
	}
	want := map[string]any{"id": m.ID, "event_id": float64(7), "kind": m.Kind, "title": m.Title, "message": m.Body,
		"priority": float64(4), "url": m.URL, "time": "2026-05-01T12:00:00Z"}
	body := results[0].body
	if len(body) != len(want) {
		t.Errorf("body has fields %v", body)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}

	// A receiver with another secret refuses it, and Jarvis says what to fix.
	other, _ := NewWebhook(rc.URL+"/hooks/jarvis", "another-secret-0123456789")
	err = other.Send(context.Background(), m)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "JARVIS_NOTIFY_WEBHOOK_SECRET") {
		t.Errorf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "another-secret") {
		t.Errorf("error carries a secret: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	const secret = "0123456789abcdef"
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"event-1"}`)
	good := Sign(secret, now, body)
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"as sent", good, body, now, nil},
		{"a little later", good, body, now.Add(4 * time.Minute), nil},
		{"tampered body", good, []byte(`{"id":"event-2"}`), now, ErrSignatureMismatch},
		{"another secret", Sign("fedcba9876543210", now, body), body, now, ErrSignatureMismatch},
		{"old timestamp", good, body, now.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", good, body, now.Add(-6 * time.Minute), ErrSignatureExpired},
		{"timestamp changed", strings.Replace(good, "t=1800000000", "t=1800000300", 1), body, now.Add(5 * time.Minute), ErrSignatureMismatch},
		{"a second, rolled secret", good + ",v1=" + strings.Repeat("00", 32), body, now, nil},
		{"empty", "", body, now, ErrSignatureMalformed},
		{"no v1", "t=1800000000", body, now, ErrSignatureMalformed},
		{"no t", strings.TrimPrefix(good, "t=1800000000,"), body, now, ErrSignatureMalformed},
		{"v1 not hex", "t=1800000000,v1=zz", body, now, ErrSignatureMalformed},
		{"two t", "t=1,t=1800000000," + good[len("t=1800000000,"):], body, now, ErrSignatureMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := VerifySignature(secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWebhookRefusesBadSettings(t *testing.T) {
	_, err := NewWebhook("hooks.example/x?token=abc", "short")
	got := map[string]bool{}
	for _, se := range SettingErrors(err) {
		got[se.Setting] = true
	}
	if !got["url"] || !got["secret"] || strings.Contains(err.Error(), "token=abc") || strings.Contains(err.Error(), "short") {
		t.Errorf("err = %v", err)
	}
}
