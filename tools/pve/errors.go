package pve

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// ErrGuestNotFound is returned (wrapped with the VMID) when a guest is not in
// the cluster resource list.
var ErrGuestNotFound = errors.New("guest not found in the cluster")

// APIError is an answer from PVE with a non-2xx status. Message keeps PVE's
// own words (body "message", else the HTTP reason phrase); Errors holds the
// per-parameter messages PVE sends with 400.
type APIError struct {
	Method  string
	Path    string
	Status  int
	Message string
	Errors  map[string]string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pve: %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+strings.TrimSpace(e.Errors[k]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, "; "))
	}
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString(" — check the API token id and secret")
	case 595, 596:
		b.WriteString(" — the node cannot be reached from the API endpoint")
	}
	return b.String()
}

// UnreachableError says that no endpoint gave an answer (connection refused,
// TLS failure, timeout). Attempts holds one error per endpoint tried. For a
// write it also means the request was not sent anywhere.
type UnreachableError struct {
	Method   string
	Path     string
	Attempts []error
	// Deadline is set when the call's overall deadline ended the failover;
	// NotTried then names the endpoints there was no time left for.
	Deadline time.Duration
	NotTried []string
	// Skipped names endpoints left out because they hung or refused moments ago.
	Skipped []string
}

func (e *UnreachableError) Error() string {
	parts := make([]string, 0, len(e.Attempts))
	for _, a := range e.Attempts {
		parts = append(parts, a.Error())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pve: %s %s: no Proxmox API endpoint answered", e.Method, e.Path)
	if e.Deadline > 0 {
		fmt.Fprintf(&b, " within %s (the deadline for one Proxmox call)", e.Deadline)
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(parts, "; "))
	}
	if len(e.NotTried) > 0 {
		fmt.Fprintf(&b, "; no time left to try %s", strings.Join(e.NotTried, ", "))
	}
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, "; skipped %s (hung or refused moments ago, tried again shortly)", strings.Join(e.Skipped, ", "))
	}
	return b.String()
}

// Unwrap exposes every attempt, so errors.Is(err, context.DeadlineExceeded) works.
func (e *UnreachableError) Unwrap() []error { return e.Attempts }

// EndpointError is one failed attempt against one endpoint.
type EndpointError struct {
	Endpoint string // name
	URL      string
	Err      error
}

func (e *EndpointError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Endpoint, e.URL, e.Err)
}

func (e *EndpointError) Unwrap() error { return e.Err }

// NoAnswerError says a write was sent to an endpoint (or may have been) but no
// complete answer came back: a timeout, a reset, a truncated body. PVE may have
// acted on it; it is never sent again (see OutcomeUnknown).
type NoAnswerError struct {
	Method   string
	Path     string
	Endpoint string
	URL      string
	Err      error
}

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("pve: %s %s: sent to %s (%s), but no complete answer came back: %v", e.Method, e.Path, e.Endpoint, e.URL, e.Err)
}

func (e *NoAnswerError) Unwrap() error { return e.Err }

// DecodeError says a 2xx body could not be read as PVE JSON.
type DecodeError struct {
	Method string
	Path   string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("pve: %s %s: the response is not the JSON PVE sends: %v", e.Method, e.Path, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// TaskFailedError is returned by WaitTask when a task ends with an exit
// status other than OK.
type TaskFailedError struct {
	UPID       string
	ExitStatus string
}

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("pve: task %s failed: %s", e.UPID, e.ExitStatus)
}

// TaskUPID lets the audit log record the task id of a failed task.
func (e *TaskFailedError) TaskUPID() string { return e.UPID }

// FingerprintMismatchError is the TLS handshake failure when the server's
// certificate is not the pinned one.
type FingerprintMismatchError struct {
	Got string
}

func (e *FingerprintMismatchError) Error() string {
	return "TLS certificate fingerprint mismatch: the server presented " + e.Got +
		", which is not a pinned fingerprint (if the node certificate was renewed, update the pin; `pvenode cert info` shows it)"
}

func statusOf(err error) (int, bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status, true
	}
	return 0, false
}

// IsBadRequest reports a 400: PVE rejected a parameter.
func IsBadRequest(err error) bool {
	s, ok := statusOf(err)
	return ok && s == http.StatusBadRequest
}

// IsNotFound reports a missing object: ErrGuestNotFound, a 404, or PVE's
// usual 500 "... does not exist" (config file, snapshot, storage).
func IsNotFound(err error) bool {
	if errors.Is(err, ErrGuestNotFound) {
		return true
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	if apiErr.Status == http.StatusNotFound {
		return true
	}
	msg := strings.ToLower(apiErr.Message)
	return apiErr.Status == http.StatusInternalServerError &&
		(strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such"))
}

// IsUnreachable reports that PVE could not be reached: 595/596 from the API
// (node offline) or no endpoint answering at all.
func IsUnreachable(err error) bool {
	var unreachable *UnreachableError
	if errors.As(err, &unreachable) {
		return true
	}
	s, ok := statusOf(err)
	return ok && (s == 595 || s == 596)
}

// IsUnknownNode reports PVE's answer for a node name that is not a member of
// the cluster. PVE proxies a request for another node to that node's address,
// and for a name it does not know it tries DNS: a 500 "hostname lookup 'x'
// failed - failed to get address info for: x: Name or service not known".
// Calls that check membership first say "no such cluster node 'x'".
func IsUnknownNode(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInternalServerError {
		return false
	}
	msg := strings.ToLower(apiErr.Message)
	return strings.Contains(msg, "hostname lookup '") && strings.Contains(msg, "failed") ||
		strings.Contains(msg, "no such cluster node")
}
