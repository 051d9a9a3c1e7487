package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook posts each message as JSON to one URL, signed so the receiver can
// tell it came from this Jarvis and was not replayed.
//
// The body is one object:
//
//	id        string  unique per message, the same on every attempt: drop repeats by it
//	event_id  number  the feed event the message is about (GET /api/events replays it); 0 for none
//	kind      string  what happened: approval.requested, alert.raised, tool.unknown, … (Message.Kind)
//	title     string  one line
//	message   string  a few lines of plain text
//	priority  number  1 (min) … 5 (urgent), ntfy's scale
//	url       string  where in the console to look; may be empty
//	time      string  when it happened, RFC 3339
//
// Headers: Content-Type application/json; X-Jarvis-Event: the kind;
// X-Jarvis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body,
// keyed with the shared secret>. VerifySignature checks one.
type Webhook struct {
	target endpoint
	secret string
	client *http.Client
	now    func() time.Time
}

// Webhook headers.
const (
	SignatureHeader = "X-Jarvis-Signature"
	EventHeader     = "X-Jarvis-Event"
)

// MinWebhookSecret is the shortest webhook secret accepted.
const MinWebhookSecret = 16

// webhookBody is the JSON the webhook posts (documented on Webhook).
type webhookBody struct {
	ID       string    `json:"id"`
	EventID  uint64    `json:"event_id"`
	Kind     string    `json:"kind"`
	Title    string    `json:"title"`
	Message  string    `json:"message"`
	Priority Priority  `json:"priority"`
	URL      string    `json:"url"`
	Time     time.Time `json:"time"`
}

// NewWebhook posts to target, signing with secret (at least MinWebhookSecret
// characters). No error, of the constructor or of Send, repeats the URL
// beyond its host: its path or query may hold a token.
func NewWebhook(target, secret string) (*Webhook, error) {
	u, err := checkHTTPURL(target)
	if len(secret) < MinWebhookSecret {
		err = errors.Join(err, settingError("secret", fmt.Sprintf("must be at least %d characters", MinWebhookSecret)))
	}
	if err != nil {
		return nil, err
	}
	return &Webhook{target: newEndpoint("webhook", u, secret), secret: secret, client: newHTTPClient(), now: time.Now}, nil
}

// Name is "webhook".
func (*Webhook) Name() string { return "webhook" }

// webhookFixes say what to change for each refusal.
var webhookFixes = map[int]string{
	http.StatusUnauthorized:     "the receiver refused the signature: it must verify X-Jarvis-Signature with the same secret as JARVIS_NOTIFY_WEBHOOK_SECRET",
	http.StatusForbidden:        "the receiver refused the signature: it must verify X-Jarvis-Signature with the same secret as JARVIS_NOTIFY_WEBHOOK_SECRET",
	http.StatusNotFound:         "check JARVIS_NOTIFY_WEBHOOK_URL: nothing answers at that path",
	http.StatusMethodNotAllowed: "check JARVIS_NOTIFY_WEBHOOK_URL: the address does not take POST",
	0:                           "the receiver refused the message: see its log",
}

// Send posts m once, signed at the moment of sending.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(webhookBody{ID: m.ID, EventID: m.EventID, Kind: m.Kind, Title: m.Title,
		Message: m.Body, Priority: m.Priority, URL: m.URL, Time: m.Time.UTC()})
	if err != nil {
		return &DeliveryError{Err: err, Permanent: true}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(EventHeader, m.Kind)
	h.Set(SignatureHeader, Sign(w.secret, w.now(), body))
	return post(ctx, w.client, w.target, h, body, webhookFixes)
}

// Sign is the X-Jarvis-Signature value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return mac.Sum(nil)
}

// Signature check failures.
var (
	ErrSignatureMalformed = errors.New("signature header is not t=<unix seconds>,v1=<hex>")
	ErrSignatureMismatch  = errors.New("signature does not match the body and secret")
	ErrSignatureExpired   = errors.New("signature timestamp is too far from now (a replay, or a wrong clock)")
)

// VerifySignature checks an X-Jarvis-Signature header against the raw body
// as received: the HMAC must match (any one v1= value, so a receiver can roll
// its secret) and the timestamp be within maxAge of now, either way. It
// compares in constant time.
func VerifySignature(secret, header string, body []byte, now time.Time, maxAge time.Duration) error {
	var ts string
	var sums [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrSignatureMalformed
			}
			ts = v
		case "v1":
			sum, err := hex.DecodeString(v)
			if err != nil || len(sum) != sha256.Size {
				return ErrSignatureMalformed
			}
			sums = append(sums, sum)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sums) == 0 {
		return ErrSignatureMalformed
	}
	want := signature(secret, ts, body)
	matched := false
	for _, sum := range sums {
		matched = hmac.Equal(sum, want) || matched
	}
	if !matched {
		return ErrSignatureMismatch
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return ErrSignatureExpired
	}
	return nil
}
