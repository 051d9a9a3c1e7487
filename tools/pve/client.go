// Package pve is a small Proxmox VE REST client: API-token auth, TLS pinning,
// failover across the cluster's node endpoints, typed errors that keep PVE's
// own messages, lenient decoding, and task waits.
package pve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds one request to one endpoint when Config.Timeout is 0.
const DefaultTimeout = 15 * time.Second

// DefaultDeadline bounds one API call across every endpoint tried when
// Config.Deadline is 0. It is below the 60 s after which common MCP clients
// give up on a request, so a hanging cluster is reported by Jarvis itself.
const DefaultDeadline = 30 * time.Second

// DefaultSkipFor is how long an endpoint that hung or refused a connection is
// left out of failover when Config.SkipFor is 0; after that it is tried again.
const DefaultSkipFor = 30 * time.Second

// maxBody caps what we read from PVE; the largest real answers (cluster
// resources of big clusters, task logs) are far below this.
const maxBody = 32 << 20

// Endpoint is one node's API address, e.g. https://10.0.0.5:8006.
type Endpoint struct {
	Name string
	URL  string
}

// Config says how to reach and authenticate to the cluster.
type Config struct {
	Endpoints   []Endpoint    // tried in order, failing over on connection errors, 595/596 and timeouts (see do)
	TokenID     string        // "user@realm!tokenid"
	TokenSecret string        // the token's UUID secret
	Fingerprint string        // optional SHA-256 of the leaf cert ("AA:BB:…"); several may be listed, comma-separated, one per node
	CAFile      string        // optional PEM CA bundle
	Insecure    bool          // skip verification entirely
	Timeout     time.Duration // per request and endpoint; DefaultTimeout when 0
	// Deadline bounds one API call across failover, every endpoint tried
	// included; DefaultDeadline when 0. Each attempt gets min(Timeout, what is left).
	Deadline time.Duration
	// SkipFor is how long an endpoint that hung or refused is skipped; DefaultSkipFor when 0.
	SkipFor    time.Duration
	HTTPClient *http.Client // optional override (tests); TLS options are then ignored
	// AllowHTTP accepts http:// endpoints. Only for simulators on loopback in
	// tests: over plain HTTP the API token travels in clear text.
	AllowHTTP bool
	// CacheFor is how long a successful GET answer is reused, and concurrent
	// identical GETs share one request (cache.go); 0 reads afresh every time.
	// Every write the client sends, the end of a task, and Invalidate forget
	// every answer; task status and logs are never cached; WithFresh skips it.
	CacheFor time.Duration
	// Observer is told about every upstream request, and about cache lookups
	// (only when CacheFor is set; fresh and task reads make none); nil for none.
	Observer Observer
}

// String keeps the secret out of %v and %+v.
func (c Config) String() string {
	names := make([]string, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		names = append(names, e.Name+"="+e.URL)
	}
	return fmt.Sprintf("pve.Config{Endpoints:[%s] TokenID:%s TokenSecret:[redacted] Fingerprint:%q CAFile:%q Insecure:%t Timeout:%s Deadline:%s CacheFor:%s}",
		strings.Join(names, " "), c.TokenID, c.Fingerprint, c.CAFile, c.Insecure, c.Timeout, c.Deadline, c.CacheFor)
}

// LogValue keeps the secret out of slog output.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Client talks to one PVE cluster. It is safe for concurrent use.
type Client struct {
	endpoints []Endpoint // URLs normalised to scheme://host[:port]/api2/json
	authValue string
	timeout   time.Duration
	deadline  time.Duration
	http      *http.Client
	preferred atomic.Int32     // index of the endpoint that answered last
	health    health           // endpoints that just hung or refused
	secret    string           // only to keep it out of error messages (see apiError)
	caFile    string           // PVE_CA_FILE, named when it does not cover a certificate
	cache     readCache        // recent GET answers and the reads under way (cache.go)
	observer  Observer         // nil for none
	now       func() time.Time // the cache's clock; tests replace it
}

var tokenIDPattern = regexp.MustCompile(`^[^\s@!:=]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]*$`)

// CheckTokenID says what is wrong with an API token id, if anything. Proxmox
// shows a new token as user@realm!id=SECRET; pasted whole, the secret is never
// echoed back.
func CheckTokenID(id string) error {
	if before, _, found := strings.Cut(id, "="); found {
		return fmt.Errorf("%q=… includes the token's secret after '=': keep only user@realm!tokenid here and put the part after '=' in the secret", before)
	}
	if !tokenIDPattern.MatchString(id) {
		return fmt.Errorf("%q must look like user@realm!tokenid (e.g. jarvis@pve!mcp)", id)
	}
	return nil
}

// New validates cfg and builds a client. Every problem found is listed.
func New(cfg Config) (*Client, error) {
	var problems []error
	if len(cfg.Endpoints) == 0 {
		problems = append(problems, errors.New("no PVE API endpoint configured"))
	}
	endpoints := make([]Endpoint, 0, len(cfg.Endpoints))
	for i, ep := range cfg.Endpoints {
		base, err := normaliseURL(ep.URL, cfg.AllowHTTP)
		if err != nil {
			problems = append(problems, fmt.Errorf("endpoint %d (%s): %w", i+1, ep.Name, err))
			continue
		}
		name := ep.Name
		if name == "" {
			u, _ := url.Parse(base)
			name = u.Hostname()
		}
		endpoints = append(endpoints, Endpoint{Name: name, URL: base})
	}
	if err := CheckTokenID(cfg.TokenID); err != nil {
		problems = append(problems, fmt.Errorf("token id %w", err))
	}
	if strings.TrimSpace(cfg.TokenSecret) == "" {
		problems = append(problems, errors.New("token secret is empty"))
	} else if strings.ContainsAny(cfg.TokenSecret, " \t\r\n") {
		problems = append(problems, errors.New("token secret contains whitespace (a trailing newline from a file?)"))
	}
	if cfg.Timeout < 0 {
		problems = append(problems, fmt.Errorf("timeout %s is negative", cfg.Timeout))
	}
	if cfg.Deadline < 0 {
		problems = append(problems, fmt.Errorf("deadline %s is negative", cfg.Deadline))
	}
	if cfg.SkipFor < 0 {
		problems = append(problems, fmt.Errorf("skip time %s is negative", cfg.SkipFor))
	}
	if cfg.CacheFor < 0 {
		problems = append(problems, fmt.Errorf("cache time %s is negative", cfg.CacheFor))
	}
	var tlsConfig *tls.Config
	if cfg.HTTPClient == nil {
		var err error
		tlsConfig, err = buildTLSConfig(cfg)
		if err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("pve: invalid configuration: %w", errors.Join(problems...))
	}

	httpClient := cfg.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.Proxy = nil // the PVE API lives on the LAN; don't route it through an environment proxy
		transport.TLSClientConfig = tlsConfig
		// Keep a connection per concurrent call: with Go's default of 2 idle
		// connections per host, a burst of reads opened a new TLS session for
		// nearly every request, a third of the CPU under load (BENCHMARKS.md),
		// and as much again on the Proxmox node.
		transport.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Transport: transport}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	deadline := cfg.Deadline
	if deadline == 0 {
		deadline = DefaultDeadline
	}
	skipFor := cfg.SkipFor
	if skipFor == 0 {
		skipFor = DefaultSkipFor
	}
	return &Client{
		endpoints: endpoints,
		authValue: "PVEAPIToken=" + cfg.TokenID + "=" + cfg.TokenSecret,
		timeout:   timeout,
		deadline:  deadline,
		http:      httpClient,
		health:    health{skipFor: skipFor, failedAt: make([]time.Time, len(endpoints))},
		secret:    cfg.TokenSecret,
		caFile:    cfg.CAFile,
		cache:     newReadCache(cfg.CacheFor),
		observer:  cfg.Observer,
		now:       time.Now,
	}, nil
}

func normaliseURL(raw string, allowHTTP bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("URL %q does not parse: %w", raw, err)
	}
	if u.Scheme != "https" && !(allowHTTP && u.Scheme == "http") {
		return "", fmt.Errorf("URL %q must start with https:// (e.g. https://10.0.0.5:8006)", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("URL %q has no host", raw)
	}
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api2/json")
	if path != "" {
		return "", fmt.Errorf("URL %q must not have a path other than /api2/json", raw)
	}
	return u.Scheme + "://" + u.Host + "/api2/json", nil
}

func buildTLSConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	var problems []error
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			problems = append(problems, fmt.Errorf("reading CA file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				problems = append(problems, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile))
			}
			tc.RootCAs = pool
		}
	}
	if cfg.Fingerprint != "" {
		pins, err := parseFingerprints(cfg.Fingerprint)
		if err != nil {
			problems = append(problems, err)
		}
		// Pinning replaces CA and host name checks: PVE nodes usually serve a
		// certificate from the cluster's own CA, which no system trusts.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("TLS: the server sent no certificate")
			}
			got := FingerprintOf(cs.PeerCertificates[0])
			if pins[normaliseFingerprint(got)] {
				return nil
			}
			return &FingerprintMismatchError{Got: got}
		}
	} else if cfg.Insecure {
		tc.InsecureSkipVerify = true
	}
	return tc, errors.Join(problems...)
}

// FingerprintOf returns the SHA-256 fingerprint of a certificate in PVE's
// notation: upper-case hex pairs joined by colons.
func FingerprintOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	hexed := strings.ToUpper(hex.EncodeToString(sum[:]))
	pairs := make([]string, 0, len(sum))
	for i := 0; i < len(hexed); i += 2 {
		pairs = append(pairs, hexed[i:i+2])
	}
	return strings.Join(pairs, ":")
}

func normaliseFingerprint(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
}

func parseFingerprints(list string) (map[string]bool, error) {
	pins := map[string]bool{}
	var problems []error
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' }) {
		n := normaliseFingerprint(f)
		if b, err := hex.DecodeString(n); err != nil || len(b) != sha256.Size {
			problems = append(problems, fmt.Errorf("fingerprint %q is not a SHA-256 fingerprint (64 hex digits, colons optional)", f))
			continue
		}
		pins[n] = true
	}
	if len(pins) == 0 && len(problems) == 0 {
		problems = append(problems, errors.New("fingerprint is set but empty"))
	}
	return pins, errors.Join(problems...)
}

// apiPath joins path segments, escaping each one.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// envelope is PVE's answer wrapper.
type envelope struct {
	Data    json.RawMessage            `json:"data"`
	Message string                     `json:"message"`
	Errors  map[string]json.RawMessage `json:"errors"`
}

// answer is one HTTP exchange with one endpoint.
type answer struct {
	status int
	reason string
	body   []byte
}

func (c *Client) roundTrip(ctx context.Context, ep Endpoint, method, path string, params url.Values) (ans answer, err error) {
	if c.observer != nil {
		start := time.Now()
		defer func() {
			failed := err != nil || ans.status < 200 || ans.status > 299
			c.observer.ObserveUpstream(ep.Name, opTemplate(method, path), failed, time.Since(start))
		}()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := ep.URL + path
	var body io.Reader
	if len(params) > 0 {
		if method == http.MethodGet || method == http.MethodDelete {
			target += "?" + params.Encode()
		} else {
			body = strings.NewReader(params.Encode())
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return answer{}, notSentError{fmt.Errorf("building request: %w", err)}
	}
	req.Header.Set("Authorization", c.authValue)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, c.explainUntrusted(ep, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("reading the response: %w", err)
	}
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	return answer{status: resp.StatusCode, reason: reason, body: data}, nil
}

func (c *Client) apiError(method, path string, ans answer) *APIError {
	e := &APIError{Method: method, Path: path, Status: ans.status}
	var env envelope
	if len(bytes.TrimSpace(ans.body)) > 0 && json.Unmarshal(ans.body, &env) == nil {
		e.Message = strings.TrimSpace(env.Message)
		for k, raw := range env.Errors {
			if e.Errors == nil {
				e.Errors = map[string]string{}
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw)
			}
			e.Errors[k] = strings.TrimSpace(s)
		}
	}
	if e.Message == "" {
		e.Message = ans.reason
	}
	if e.Message == "" {
		e.Message = http.StatusText(ans.status)
	}
	// A proxy in front of PVE may echo the request's Authorization header in its
	// error; the message goes to logs, /api/health and the console.
	e.Message = c.scrub(e.Message)
	for k, v := range e.Errors {
		e.Errors[k] = c.scrub(v)
	}
	return e
}

// scrub replaces the token secret in text. A secret this short would blank
// ordinary words; real ones are UUIDs.
func (c *Client) scrub(text string) string {
	if len(c.secret) < 8 {
		return text
	}
	return strings.ReplaceAll(text, c.secret, "[redacted]")
}

// UntrustedCertificateError is the TLS handshake failure when the API's
// certificate is not trusted and no fingerprint is pinned: no CA file is set and
// the system does not trust it (PVE's own certificates never are), or the CA
// file does not cover it. It names the presented certificate's fingerprint, so
// the user can compare it with the node's and pin it.
type UntrustedCertificateError struct {
	URL         string // the API's origin, e.g. https://10.0.0.5:8006
	Fingerprint string // SHA-256 of the presented certificate, in PVE's notation
	Why         string // self-signed, signed by an unknown authority, …
	CAFile      string // PVE_CA_FILE, when one was configured
	Err         error  // the verification error
}

func (e *UntrustedCertificateError) Error() string {
	trust := "is not trusted"
	if e.CAFile != "" {
		trust = "is not trusted by PVE_CA_FILE (" + e.CAFile + ")"
	}
	return fmt.Sprintf("the Proxmox API at %s presented a certificate that %s (%s); to trust it, check it is your node's "+
		"(`pvenode cert info` on the node shows its fingerprint) and set PVE_TLS_FINGERPRINT=%s", e.URL, trust, e.Why, e.Fingerprint)
}

func (e *UntrustedCertificateError) Unwrap() error { return e.Err }

// explainUntrusted turns a failed certificate check into an
// UntrustedCertificateError; other errors are returned as they are.
func (c *Client) explainUntrusted(ep Endpoint, err error) error {
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		return err
	}
	leaf := cve.UnverifiedCertificates[0]
	why := cve.Err.Error()
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	selfSigned := bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	switch {
	case errors.As(cve.Err, &unknown) && selfSigned:
		why = "self-signed"
	case errors.As(cve.Err, &unknown):
		why = "signed by an unknown authority, such as the cluster's own CA"
	case errors.As(cve.Err, &host):
		// Go checks the name first; a self-signed certificate fails both.
		why = "issued for another host name: " + strings.TrimPrefix(host.Error(), "x509: ")
		if selfSigned {
			why = "self-signed, and " + why
		}
	case errors.As(cve.Err, &invalid) && invalid.Reason == x509.Expired:
		why = "expired or not yet valid"
	}
	return &UntrustedCertificateError{URL: Origin(ep.URL), Fingerprint: FingerprintOf(leaf),
		Why: why, CAFile: c.caFile, Err: cve}
}

// errNullData marks a successful answer whose data is null where an object was expected.
var errNullData = errors.New(`"data" is null`)

func decodeData(method, path string, body []byte, out any) error {
	data, err := envelopeData(method, path, body)
	if err != nil {
		return err
	}
	return decodeRaw(method, path, data, out)
}

// envelopeData returns the "data" member of a successful answer's body.
func envelopeData(method, path string, body []byte) (json.RawMessage, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &DecodeError{Method: method, Path: path, Err: err}
	}
	return env.Data, nil
}

// decodeRaw decodes the "data" member of an answer into out (when out is not nil).
func decodeRaw(method, path string, data json.RawMessage, out any) error {
	if out == nil {
		return nil
	}
	raw := bytes.TrimSpace(data)
	if len(raw) == 0 || string(raw) == "null" {
		// Lists may legitimately be empty; objects may not be missing.
		if _, isList := out.(listTarget); isList {
			return nil
		}
		return &DecodeError{Method: method, Path: path, Err: errNullData}
	}
	target := out
	if lt, ok := out.(listTarget); ok {
		target = lt.ptr
	}
	if err := json.Unmarshal(raw, target); err != nil {
		return &DecodeError{Method: method, Path: path, Err: err}
	}
	return nil
}

// listTarget marks a decode destination for which null data means "empty".
type listTarget struct{ ptr any }

func list(ptr any) listTarget { return listTarget{ptr: ptr} }

// CloseIdleConnections drops pooled keep-alive connections (at shutdown, or
// before a goroutine-leak check in tests).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Origin is an endpoint's address as people write it: the API URL without /api2/json.
func Origin(apiURL string) string { return strings.TrimSuffix(apiURL, "/api2/json") }
