package tools

// list_alerts: the alerts the watcher raised and nothing resolved yet, and for
// each the standing approvals that let this caller act on it. The alerts and
// rules live in Jarvis's own store, which the server reads (Env.Alerts).

import (
	"context"
	"errors"

	"github.com/jarvis-homelab/jarvis/safety"
)

// Alerts answers list_alerts for a caller; the server implements it.
type Alerts interface {
	OpenAlertsFor(ctx context.Context, caller safety.Principal) (*AlertList, error)
}

// AlertList is list_alerts' answer.
type AlertList struct {
	Alerts []OpenAlert `json:"alerts" jsonschema:"open alerts, oldest first"`
	Note   string      `json:"note,omitempty" jsonschema:"what the list cannot show, when anything"`
}

// OpenAlert is one open alert.
type OpenAlert struct {
	ID       uint64 `json:"id" jsonschema:"stable id of the alert (its feed event id)"`
	Kind     string `json:"kind" jsonschema:"guest_stopped_unexpectedly, guest_stopped, node_unreachable, node_memory, storage_full or service_failed"`
	Subject  string `json:"subject" jsonschema:"what it is about: guest/101, node/pve, service/pve/nginx, storage/pve/local"`
	Node     string `json:"node,omitempty"`
	VMID     int64  `json:"vmid,omitempty"`
	Service  string `json:"service,omitempty"`
	Severity string `json:"severity" jsonschema:"info, warning or critical"`
	Summary  string `json:"summary"`
	Since    string `json:"since" jsonschema:"when it was raised, RFC 3339"`
	// Rules that let this caller act on the alert without a person.
	Rules []AlertRule `json:"rules" jsonschema:"standing approvals that let you act on this alert without waiting for a person; empty: a person must approve any change"`
}

// AlertRule is one standing approval that covers acting on an alert.
type AlertRule struct {
	Rule     string              `json:"rule" jsonschema:"rule id and version, e.g. r_0123456789ab/v1"`
	Tool     string              `json:"tool" jsonschema:"the tool it lets you call"`
	Args     map[string][]string `json:"args" jsonschema:"the only arguments it allows, each with its allowed values (* for any); pass exactly these"`
	UsesLeft int                 `json:"uses_left" jsonschema:"calls it still allows this hour for this alert's subject (for a node alert: per guest or service it acts on)"`
	Expires  string              `json:"expires" jsonschema:"when the rule ends, RFC 3339"`
}

// callerKey is where dispatch puts the caller for tools that answer per caller.
type callerKey struct{}

// WithCaller records the calling principal in ctx (dispatch does, for every call).
func WithCaller(ctx context.Context, p safety.Principal) context.Context {
	return context.WithValue(ctx, callerKey{}, p)
}

// CallerOf is the principal WithCaller recorded.
func CallerOf(ctx context.Context) (safety.Principal, bool) {
	p, ok := ctx.Value(callerKey{}).(safety.Principal)
	return p, ok
}

func listAlerts() *Tool {
	return define[NoInput, AlertList](spec{
		name: "list_alerts", title: "Open alerts", tier: safety.Green,
		description: "Alerts Jarvis's watcher raised and that are still open (a guest that stopped unexpectedly, a node unreachable, a failed service, storage nearly full), each with the standing approvals that let you act on it without waiting for a person. Also a resource, jarvis://alerts, that you can subscribe to.",
	}, func(ctx context.Context, env *Env, _ NoInput) (*Call, error) {
		return read(safety.Target{}, "Read the open alerts", func(ctx context.Context) (any, error) {
			caller, ok := CallerOf(ctx)
			if !ok {
				return nil, errors.New("the caller is not known, so its standing approvals cannot be shown")
			}
			if env.Alerts == nil {
				return nil, errors.New("alerts are not available in this process")
			}
			return env.Alerts.OpenAlertsFor(ctx, caller)
		}), nil
	})
}
