package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/jarvis-homelab/jarvis/safety"
)

// Channel delivers a message to people: ntfy, a webhook, e-mail. Send makes
// one attempt, bounded by ctx; the notifier retries. An error says whether
// trying again can help (IsPermanent) and what to fix (DeliveryError).
type Channel interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// DeliveryError is a failed attempt: what went wrong, what the operator can
// change, and whether another attempt could succeed. Its text never holds a
// channel's secret.
type DeliveryError struct {
	Err       error
	Fix       string // empty when there is nothing obvious to change
	Permanent bool   // another attempt would fail the same way
}

func (e *DeliveryError) Error() string {
	if e.Fix == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "; " + e.Fix
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// IsPermanent reports whether err says that retrying cannot help.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// scrubbed is err's text with every secret replaced and credentials in URLs
// hidden: servers echo requests, and Go's errors quote the URL.
func scrubbed(err error, secrets ...string) error {
	s := err.Error()
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, safety.Redacted)
		}
	}
	return errors.New(safety.RedactURL(s))
}

// userAgent names Jarvis to receivers.
const userAgent = "Jarvis-notify/1"

// newHTTPClient is the client of the HTTP channels. It follows no redirect:
// a POST redirected elsewhere would lose its body or carry the token to
// another host, and the operator should put the final address in the setting.
func newHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// SettingError names the setting a constructor refused — url, token,
// secret, host, port, tls, from, to or login — and what is wrong with it,
// so configuration can name the variable. Constructors join one per problem.
type SettingError struct {
	Setting string
	Problem string
}

func (e *SettingError) Error() string { return e.Setting + ": " + e.Problem }

func settingError(setting, problem string) error {
	return &SettingError{Setting: setting, Problem: problem}
}

// SettingErrors lists the SettingErrors in err (joined or alone).
func SettingErrors(err error) []*SettingError {
	var out []*SettingError
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var se *SettingError
		if errors.As(err, &se) {
			out = append(out, se)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// checkHTTPURL checks that s is an absolute http(s) URL and returns it parsed.
func checkHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, settingError("url", "must be an http:// or https:// address")
	}
	return u, nil
}

// endpoint is where an HTTP channel posts, and what its errors may say of it:
// the channel's name and the host, nothing else. An ntfy topic is the only
// thing that keeps others from reading it, a webhook's path or query often
// holds a token, and Go's errors quote the whole URL.
type endpoint struct {
	name    string // ntfy, webhook
	target  *url.URL
	secrets []string // scrubbed from every error text, longest first
}

func newEndpoint(name string, target *url.URL, secrets ...string) endpoint {
	return endpoint{name: name, target: target, secrets: append(urlSecrets(target), secrets...)}
}

// The shortest parts of an address scrubbed from error texts: a whole path,
// query, password or fragment, and a path segment, query value or user name
// on its own. Shorter ones would mangle the text and guard nothing.
const (
	minURLWhole = 4
	minURLPart  = 6
)

// urlSecrets are the forms in which u's login, path, query and fragment may
// come back in an error or a server's answer, longest first so that no
// part of a longer one is left behind. What the host also holds is left
// alone: the host is shown anyway.
func urlSecrets(u *url.URL) []string {
	var out []string
	add := func(s string, minLen int) {
		if len(s) >= minLen && !strings.Contains(u.Host, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(u.String(), 1)
	if u.User != nil {
		add(u.User.String(), minURLWhole)
		add(u.User.Username(), minURLPart)
		if pw, ok := u.User.Password(); ok {
			add(pw, minURLWhole)
		}
	}
	for _, p := range []string{u.EscapedPath(), u.Path} {
		if p = strings.Trim(p, "/"); p != "" {
			add(p, minURLWhole)
			for seg := range strings.SplitSeq(p, "/") {
				add(seg, minURLPart)
			}
		}
	}
	if u.RawQuery != "" {
		add(u.RawQuery, minURLWhole)
		if q, err := url.QueryUnescape(u.RawQuery); err == nil {
			add(q, minURLWhole)
		}
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v, minURLPart)
			}
		}
	}
	add(u.Fragment, minURLWhole)
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// where is how errors name the endpoint: "ntfy at ntfy.sh".
func (e endpoint) where() string { return e.name + " at " + e.target.Host }

// error is err's text, without the URL Go's url.Error quotes and with every
// secret scrubbed, after where: "ntfy at ntfy.sh: dial tcp …: connection refused".
func (e endpoint) error(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return errors.New(e.where() + ": " + scrubbed(err, e.secrets...).Error())
}

// answerHead is how much of a refusal's body is read to say why.
const answerHead = 4 << 10

// post sends body to ep and classifies the answer: 2xx is delivered; 408,
// 429 and 5xx may pass later; every other answer will not, and fixes (by
// status; 0 for any other) say what to change. No error text holds the
// endpoint's path, query or secrets.
func post(ctx context.Context, client *http.Client, ep endpoint, header http.Header, body []byte, fixes map[int]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.target.String(), bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Err: ep.error(err), Permanent: true}
	}
	req.Header = header
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return transportError(err, ep)
	}
	defer resp.Body.Close()
	// The head says why; the rest is read so the connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, answerHead))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	text := string(head)
	if len(head) == answerHead { // the last word may be part of a secret cut in two: scrubbing would miss it
		text = text[:max(0, strings.LastIndexFunc(text, unicode.IsSpace))]
	}
	// Scrubbed before it is clipped, for the same reason.
	text = oneLine(scrubbed(errors.New(text), ep.secrets...).Error())
	why := errors.New(ep.where() + " answered " + resp.Status)
	if text != "" {
		why = fmt.Errorf("%w: %s", why, clip(text, 200))
	}
	code := resp.StatusCode
	switch {
	case code >= 300 && code < 400:
		where := "another address"
		if loc, err := resp.Location(); err == nil {
			where = loc.Scheme + "://" + loc.Host
		}
		return &DeliveryError{Err: why, Permanent: true,
			Fix: "the server redirects to " + safety.RedactURL(where) + ": set the final address (often https:// instead of http://)"}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		fix := fixes[code]
		if fix == "" {
			fix = "the server is busy; Jarvis tries again"
		}
		return &DeliveryError{Err: why, Fix: fix}
	case code >= 500:
		return &DeliveryError{Err: why, Fix: "the server failed; Jarvis tries again"}
	}
	fix := fixes[code]
	if fix == "" {
		fix = fixes[0]
	}
	return &DeliveryError{Err: why, Fix: fix, Permanent: true}
}

// transportError classifies a request that got no answer: a certificate that
// is not trusted will not become trusted by retrying; a network failure may pass.
func transportError(err error, ep endpoint) error {
	host := ep.target.Host
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return &DeliveryError{Err: ep.error(err), Permanent: true,
			Fix: host + "'s certificate is not trusted by this system: use the name on its certificate, or a certificate from a public or installed CA"}
	}
	if errors.Is(err, context.Canceled) {
		return &DeliveryError{Err: ep.error(err)}
	}
	return &DeliveryError{Err: ep.error(err), Fix: "check that " + host + " can be reached from the Jarvis host"}
}
