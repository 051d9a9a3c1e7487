package watch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// Problem is a dependency that does not work: which one, why in words, and what
// to change. /api/health lists them; the watcher logs and publishes them.
type Problem struct {
	Dependency string    `json:"dependency"` // store.DependencyPVE, …
	Error      string    `json:"error"`
	Fix        string    `json:"fix,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	// whole: the API as a whole fails (unreachable, certificate, token), not one
	// read; any successful read clears it.
	whole bool
}

// Diagnose says why a Proxmox call failed, in words that do not depend on which
// call it was, so the same cause reads the same from every poll and from health.
func Diagnose(err error) Problem {
	p := Problem{Dependency: store.DependencyPVE, Error: cause(err), whole: true}
	var unreachable *pve.UnreachableError
	var apiErr *pve.APIError
	switch {
	case errors.As(err, &unreachable):
		p.Fix = unreachableFix(unreachable)
	case errors.As(err, &apiErr):
		switch apiErr.Status {
		case http.StatusUnauthorized:
			p.Fix = "check PVE_TOKEN_ID and PVE_TOKEN_SECRET: the token must exist on the cluster (Datacenter → Permissions → API Tokens), not be expired, and the secret must be the one shown when it was made"
		case http.StatusForbidden:
			p.whole = false
			p.Fix = "give the token the privilege PVE names (with privilege separation, the token itself, not only its user); the PVEAuditor role on / covers every read"
		case 595, 596:
			p.Fix = "the node behind the API endpoint is offline or cannot reach the others; check it, or list another node in JARVIS_NODES"
		default:
			p.whole = false
		}
	case errors.Is(err, context.DeadlineExceeded):
		p.Fix = "check that the API answers from this host: curl -k https://HOST:8006/api2/json/version"
	}
	return p
}

// cause is the error without the request's method and path.
func cause(err error) string {
	var unreachable *pve.UnreachableError
	var apiErr *pve.APIError
	switch {
	case errors.As(err, &unreachable):
		parts := make([]string, 0, len(unreachable.Attempts))
		for _, a := range unreachable.Attempts {
			parts = append(parts, attemptCause(a))
		}
		msg := "no Proxmox API endpoint answered"
		if len(parts) > 0 {
			msg += ": " + strings.Join(parts, "; ")
		}
		return msg
	case errors.As(err, &apiErr):
		msg := strings.TrimPrefix(apiErr.Error(), "pve: ")
		if apiErr.Status == http.StatusUnauthorized || apiErr.Status == 595 || apiErr.Status == 596 {
			// Every call fails alike: the path would only make each poll differ.
			msg = strings.TrimPrefix(msg, apiErr.Method+" "+apiErr.Path+": ")
		}
		return msg
	case errors.Is(err, context.DeadlineExceeded):
		return "the Proxmox API did not answer in time"
	}
	return err.Error()
}

// attemptCause names the endpoint and what went wrong there, without the URL of
// the request (which names the call).
func attemptCause(err error) string {
	var ep *pve.EndpointError
	if !errors.As(err, &ep) {
		return err.Error()
	}
	inner := ep.Err
	var ue *url.Error
	if errors.As(inner, &ue) {
		inner = ue.Err
	}
	var untrusted *pve.UntrustedCertificateError
	var apiErr *pve.APIError
	switch {
	case errors.As(inner, &untrusted):
		return untrusted.Error() // names the URL itself
	case errors.As(inner, &apiErr):
		return fmt.Sprintf("%s (%s): %d %s", ep.Endpoint, pve.Origin(ep.URL), apiErr.Status, apiErr.Message)
	case errors.Is(inner, context.DeadlineExceeded):
		return fmt.Sprintf("%s (%s): no answer in time", ep.Endpoint, pve.Origin(ep.URL))
	}
	return fmt.Sprintf("%s (%s): %v", ep.Endpoint, pve.Origin(ep.URL), inner)
}

// unreachableFix says what to change for the commonest causes.
func unreachableFix(u *pve.UnreachableError) string {
	var pins []string
	var renewed []string
	for _, a := range u.Attempts {
		var untrusted *pve.UntrustedCertificateError
		var mismatch *pve.FingerprintMismatchError
		switch {
		case errors.As(a, &untrusted):
			if !slices.Contains(pins, untrusted.Fingerprint) {
				pins = append(pins, untrusted.Fingerprint)
			}
		case errors.As(a, &mismatch):
			renewed = append(renewed, mismatch.Got)
		}
	}
	switch {
	case len(pins) > 0:
		// The cause says how to check it is the node's; this is what to set.
		return "set PVE_TLS_FINGERPRINT=" + strings.Join(pins, ",")
	case len(renewed) > 0:
		return "if the node's certificate was renewed, pin the new one: PVE_TLS_FINGERPRINT=" + strings.Join(renewed, ",") + " (check it with `pvenode cert info`)"
	}
	return "check JARVIS_NODES (each node's address and API port, usually 8006) and that this host can reach it (firewall, VPN, the node is up)"
}

// problemKey is what "the cause changed" compares: the causes, in order.
func problemKey(ps []Problem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Error
	}
	return strings.Join(parts, "; ")
}

// problemFix joins the fixes of ps, each once.
func problemFix(ps []Problem) string {
	var fixes []string
	for _, p := range ps {
		if p.Fix != "" && !slices.Contains(fixes, p.Fix) {
			fixes = append(fixes, p.Fix)
		}
	}
	return strings.Join(fixes, "; ")
}
