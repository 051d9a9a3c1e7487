package pve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// errDeadline is the cause of the overall deadline of one API call, so it can be
// told from the caller's own deadline.
var errDeadline = fmt.Errorf("the deadline for one Proxmox call passed: %w", context.DeadlineExceeded)

// do sends one API call, failing over between endpoints, and decodes the
// "data" member into out (when out is not nil).
//
// The whole call, every endpoint tried included, ends within c.deadline; each
// attempt gets min(c.timeout, what is left). Endpoints that just hung or refused
// are skipped for a while (health), unless every endpoint is in that state, in
// which case they are tried least recently failed first: a call is never
// refused without a try.
//
// GETs fail over on every transport error and on 595/596. Writes fail over only
// when the request surely did not reach PVE (dial/DNS/TLS errors) or PVE said
// 595, so a "stop" is never sent twice. A write that may have reached PVE but
// got no usable answer returns a *NoAnswerError (see OutcomeUnknown); the client
// never sends it again.
//
// GETs go through the read cache (cache.go). Every other method forgets the
// cache before it is sent and again after, whatever the outcome: a read under
// way while the write is in flight may show the cluster before the change, and
// the generation bump keeps it from being stored.
func (c *Client) do(ctx context.Context, method, path string, params url.Values, out any) error {
	if method == http.MethodGet {
		return c.get(ctx, path, params, out)
	}
	c.cache.invalidate()
	defer c.cache.invalidate()
	data, err := c.fetch(ctx, method, path, params)
	if err != nil {
		return err
	}
	return decodeRaw(method, path, data, out)
}

// fetch sends one API call with failover (see do) and returns the "data" member
// of its successful answer, undecoded.
func (c *Client) fetch(ctx context.Context, method, path string, params url.Values) (json.RawMessage, error) {
	dctx, cancel := context.WithTimeoutCause(ctx, c.deadline, errDeadline)
	defer cancel()
	write := method != http.MethodGet
	order, skipped := c.health.order(c.endpoints, int(c.preferred.Load()), time.Now())
	var attempts []error
	var lastAPIErr *APIError
	tried := 0
	for _, idx := range order {
		if dctx.Err() != nil {
			break
		}
		tried++
		ep := c.endpoints[idx]
		ans, err := c.roundTrip(dctx, ep, method, path, params)
		if err != nil {
			sent := !notSent(err)
			if ctx.Err() != nil {
				// The caller gave up (or its own deadline passed): not the endpoint's fault.
				if write && sent {
					return nil, &NoAnswerError{Method: method, Path: path, Endpoint: ep.Name, URL: ep.URL, Err: ctx.Err()}
				}
				return nil, fmt.Errorf("pve: %s %s: %w", method, path, ctx.Err())
			}
			c.health.markFailed(idx, time.Now())
			if write && sent {
				return nil, &NoAnswerError{Method: method, Path: path, Endpoint: ep.Name, URL: ep.URL, Err: err}
			}
			attempts = append(attempts, &EndpointError{Endpoint: ep.Name, URL: ep.URL, Err: err})
			continue
		}
		c.health.markAnswered(idx)
		// 595 means pveproxy could not connect to the target node: nothing was
		// sent there. 596 means the request may have reached it, so only reads
		// are tried again elsewhere; a write might already have started a task.
		if ans.status == 595 || (ans.status == 596 && !write) {
			lastAPIErr = c.apiError(method, path, ans)
			attempts = append(attempts, &EndpointError{Endpoint: ep.Name, URL: ep.URL, Err: lastAPIErr})
			continue
		}
		c.preferred.Store(int32(idx))
		if ans.status < 200 || ans.status > 299 {
			return nil, c.apiError(method, path, ans)
		}
		return envelopeData(method, path, ans.body)
	}
	if lastAPIErr != nil {
		// PVE itself answered that the target node is unreachable: that is the
		// most precise thing to report.
		return nil, lastAPIErr
	}
	u := &UnreachableError{Method: method, Path: path, Attempts: attempts}
	if context.Cause(dctx) == errDeadline {
		u.Deadline = c.deadline
		for _, idx := range order[tried:] {
			u.NotTried = append(u.NotTried, c.endpoints[idx].Name)
		}
	}
	for _, idx := range skipped {
		u.Skipped = append(u.Skipped, c.endpoints[idx].Name)
	}
	return nil, u
}

// notSentError marks a failure before any byte of the request left.
type notSentError struct{ err error }

func (e notSentError) Error() string { return e.err.Error() }
func (e notSentError) Unwrap() error { return e.err }

// notSent reports errors that happen before any byte of the request left:
// connection refused, no route, DNS, TLS handshake.
func notSent(err error) bool {
	var ns notSentError
	if errors.As(err, &ns) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	var pinErr *FingerprintMismatchError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	return errors.As(err, &dnsErr) || errors.As(err, &pinErr) || errors.As(err, &certErr) ||
		errors.As(err, &unknownAuth) || errors.As(err, &hostErr)
}

// health is the client's short memory of endpoints that hung or refused: they are
// skipped for skipFor, then tried again (a probe is just the next call using it).
type health struct {
	skipFor  time.Duration
	mu       sync.Mutex
	failedAt []time.Time // per endpoint; zero when it answered last time
}

// order returns the endpoints to try, starting at preferred, and the ones skipped.
// When every endpoint failed recently, all are returned, least recently failed
// first, and none is skipped.
func (h *health) order(eps []Endpoint, preferred int, now time.Time) (try, skipped []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(eps)
	for i := 0; i < n; i++ {
		idx := (preferred + i) % n
		if f := h.failedAt[idx]; !f.IsZero() && now.Sub(f) < h.skipFor {
			skipped = append(skipped, idx)
		} else {
			try = append(try, idx)
		}
	}
	if len(try) > 0 {
		return try, skipped
	}
	sort.SliceStable(skipped, func(a, b int) bool { return h.failedAt[skipped[a]].Before(h.failedAt[skipped[b]]) })
	return skipped, nil
}

func (h *health) markFailed(idx int, now time.Time) {
	h.mu.Lock()
	h.failedAt[idx] = now
	h.mu.Unlock()
}

func (h *health) markAnswered(idx int) {
	h.mu.Lock()
	h.failedAt[idx] = time.Time{}
	h.mu.Unlock()
}

// OutcomeUnknown reports a write whose effect cannot be told from what came back:
// it was sent (or may have been) and then timed out, was reset, or got a
// truncated or unreadable answer, or PVE answered 596 (the target node may have
// received it). Such a write must not be sent again before someone looks.
func OutcomeUnknown(err error) bool {
	var noAnswer *NoAnswerError
	if errors.As(err, &noAnswer) {
		return true
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == 596 && apiErr.Method != http.MethodGet
	}
	var dec *DecodeError
	return errors.As(err, &dec) && dec.Method != http.MethodGet
}
