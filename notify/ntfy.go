package notify

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Ntfy publishes to one ntfy topic, on ntfy.sh or a self-hosted server: the
// message is the request body, and the headers Title, Priority (1–5), Tags
// and Click carry the rest (https://docs.ntfy.sh/publish/).
type Ntfy struct {
	topic  endpoint
	token  string
	client *http.Client
}

// ntfyTopicName is what ntfy accepts as a topic name.
var ntfyTopicName = regexp.MustCompile(`^[-_A-Za-z0-9]{1,64}$`)

// NewNtfy publishes to topicURL (e.g. https://ntfy.sh/jarvis-7f3a9c), with
// token as the bearer token when the topic needs a login. No error, of the
// constructor or of Send, repeats the URL beyond its host: on ntfy.sh the
// topic name is the only thing that keeps others from reading it.
func NewNtfy(topicURL, token string) (*Ntfy, error) {
	u, err := checkHTTPURL(topicURL)
	if err != nil {
		return nil, err
	}
	var errs []error
	if !ntfyTopicName.MatchString(path.Base(u.Path)) {
		errs = append(errs, settingError("url", "must end with the topic name (letters, digits, - and _), e.g. https://ntfy.sh/jarvis-7f3a9c"))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		errs = append(errs, settingError("url", "must be the topic's address alone, without a login, query or #fragment (the token has its own setting)"))
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) {
		errs = append(errs, settingError("token", "may hold printable ASCII only, without spaces (ntfy access tokens look like tk_…)"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Ntfy{topic: newEndpoint("ntfy", u, token), token: token, client: newHTTPClient()}, nil
}

// Name is "ntfy".
func (*Ntfy) Name() string { return "ntfy" }

// ntfyFixes say what to change for each refusal.
var ntfyFixes = map[int]string{
	http.StatusUnauthorized:          "the topic needs a login: set JARVIS_NOTIFY_NTFY_TOKEN to an access token (ntfy token add USER)",
	http.StatusForbidden:             "the token may not publish to this topic: check JARVIS_NOTIFY_NTFY_TOKEN, and grant write access (ntfy access USER TOPIC write-only)",
	http.StatusNotFound:              "check JARVIS_NOTIFY_NTFY_URL: it is the topic's address, e.g. https://ntfy.sh/<topic>",
	http.StatusRequestEntityTooLarge: "the server refused the message's size",
	http.StatusTooManyRequests:       "the ntfy server's rate limit was hit: lower JARVIS_NOTIFY_RATE_PER_MIN; Jarvis tries again",
	0:                                "check JARVIS_NOTIFY_NTFY_URL and the ntfy server's log",
}

// Send publishes m once.
func (n *Ntfy) Send(ctx context.Context, m Message) error {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Title", headerText(m.Title))
	h.Set("Priority", strconv.Itoa(int(min(max(m.Priority, PriorityMin), PriorityUrgent))))
	if len(m.Tags) > 0 {
		h.Set("Tags", headerText(strings.Join(m.Tags, ",")))
	}
	if m.URL != "" {
		h.Set("Click", m.URL)
	}
	if n.token != "" {
		h.Set("Authorization", "Bearer "+n.token)
	}
	return post(ctx, n.client, n.topic, h, []byte(m.Body), ntfyFixes)
}

// headerText is s as a header value: as it is when it is printable ASCII,
// else RFC 2047 encoded, which ntfy decodes (v2.4.0 and later).
func headerText(s string) string {
	for _, r := range s {
		if r < ' ' || r > '~' {
			return mime.BEncoding.Encode("utf-8", s)
		}
	}
	return s
}
