// Package notify tells an operator away from the desk what Jarvis needs or
// did: an approval waiting, an alert, a call whose outcome is unknown, a
// safety switch, a standing approval used up. It follows the feed's events in
// the store (so it sees every process sharing the database and loses nothing
// when slow), turns the few that matter into short messages, and hands them to
// channels — ntfy, a signed webhook, e-mail — each with its own queue,
// retries, rate limit and held-back summary.
//
// Messages are built only from the event fields named in messages.go, never
// from audit arguments, and every text passes through safety's redaction. No
// channel secret (ntfy token, webhook secret, SMTP password) ever appears in a
// message or a log line.
package notify

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jarvis-homelab/jarvis/safety"
)

// Priority is how urgently a message should reach a person, on ntfy's scale.
type Priority int

// Priorities, ntfy's 1–5.
const (
	PriorityMin     Priority = 1
	PriorityLow     Priority = 2
	PriorityDefault Priority = 3
	PriorityHigh    Priority = 4
	PriorityUrgent  Priority = 5
)

// String is the priority's ntfy name.
func (p Priority) String() string {
	switch p {
	case PriorityMin:
		return "min"
	case PriorityLow:
		return "low"
	case PriorityHigh:
		return "high"
	case PriorityUrgent:
		return "urgent"
	}
	return "default"
}

// Message is one notification as every channel sends it.
type Message struct {
	// ID is unique per message and the same on every attempt and channel, so
	// a receiver can drop a repeat: "event-<event id>" for a message about an
	// event, "held-…" for a held-back summary, "test-…" for `jarvis notify test`.
	ID string
	// EventID is the feed event the message is about; 0 when it is about none.
	EventID uint64
	// Kind says what happened, "<event kind>.<what>": approval.requested,
	// approval.approved, approval.denied, approval.expired, alert.raised,
	// alert.resolved, tool.unknown, safety.on, safety.off, system.failing,
	// system.recovered, rule.used, rule.exhausted, rule.stopped, rule.created,
	// rule.updated, rule.revoked; and held_back and test.
	Kind     string
	Title    string // one line
	Body     string // a few lines of plain text
	Priority Priority
	Tags     []string // ntfy tags (emoji short codes); other channels ignore them
	URL      string   // where in the console to look; may be empty
	Time     time.Time
}

// Limits on what a message carries: a phone shows a line of title and a few
// lines of text, and ntfy turns a body over 4 KB into an attachment.
const (
	maxTitle = 120
	maxBody  = 1500
	maxField = 400 // one quoted field (a plan, a reason) inside the body
)

// cleaned is m with every text redacted, stripped of control characters and
// cut to its limit: the last step before a message leaves the notifier.
func (m Message) cleaned() Message {
	m.Title = clip(oneLine(redact(m.Title)), maxTitle)
	m.Body = clip(redact(m.Body), maxBody)
	m.URL = redact(m.URL)
	if m.Priority == 0 {
		m.Priority = PriorityDefault
	}
	tags := make([]string, 0, len(m.Tags))
	for _, t := range m.Tags {
		if t = oneLine(t); t != "" && !strings.Contains(t, ",") {
			tags = append(tags, t)
		}
	}
	m.Tags = tags
	return m
}

// redact hides credentials written into s (NAME=value, --password x,
// user:pass@host, ?token=…) and drops control and invisible formatting
// characters, keeping line breaks.
func redact(s string) string {
	s = safety.RedactCommand(s)
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == '\u2028', r == '\u2029':
			return -1
		}
		return r
	}, s)
}

// oneLine folds s onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
