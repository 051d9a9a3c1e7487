package watch

// Failed systemd services, read over SSH from each online node while the
// watcher polls: one alert per node and unit, resolved when the unit is no
// longer failed. A node that cannot be asked over SSH says nothing about its
// units: its alerts stay as they are and the failure is logged once.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// ServiceRunner runs one command line on a node; *sshexec.Executor is one.
// A non-nil error means the command could not be run or its outcome is unknown.
type ServiceRunner interface {
	Run(ctx context.Context, node, command string, timeout time.Duration) (*sshexec.Result, error)
}

// DefaultServiceCheckEvery is how often the failed services are read when
// SetServiceCheck is given no interval.
const DefaultServiceCheckEvery = 60 * time.Second

// serviceCheckTimeout bounds one node's answer (the node's own timeout kills
// the command then; the session gets a little longer to say so).
const serviceCheckTimeout = 15 * time.Second

// failedUnitsCommand lists the failed service units, one per line, with no
// status glyph (--plain), no header or count (--no-legend) and nothing cut
// short (--full): "smartd.service loaded failed failed Self Monitoring …".
// Nothing in it comes from outside, so it is written as it is sent (Quote
// would wrap each "--x=y" in quotes, for the same effect).
const failedUnitsCommand = "systemctl list-units --state=failed --type=service --plain --no-legend --no-pager --full"

// SetServiceCheck makes the watcher read the failed systemd services of
// nodes over r every every (0 or less: DefaultServiceCheckEvery) while it
// polls, asking only nodes the cluster does not list as offline, and raise a
// service_failed alert per node and unit. nil r turns the check off. Call
// before Run.
func (w *Watcher) SetServiceCheck(r ServiceRunner, nodes []string, every time.Duration) {
	if every <= 0 {
		every = DefaultServiceCheckEvery
	}
	w.svc, w.svcNodes, w.svcEvery = r, slices.Clone(nodes), every
	if r == nil {
		w.svcNodes = nil
	}
}

// serviceReport is what one node said: its failed units ("smartd.service"),
// or why it could not be asked.
type serviceReport struct {
	node   string
	failed []string
	err    error
}

func serviceKey(node, unit string) string { return "service-failed:" + node + "/" + unit }

// serviceKeyNode is the node of a service alert's key.
func serviceKeyNode(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "service-failed:")
	if !ok {
		return "", false
	}
	node, _, ok := strings.Cut(rest, "/")
	return node, ok
}

// nodesToAsk are the configured nodes the last nodes poll did not find
// offline or missing; all of them before a nodes poll has worked (SSH may
// work when the API does not).
func (w *Watcher) nodesToAsk() []string {
	if w.nodeStatus == nil {
		return slices.Clone(w.svcNodes)
	}
	var out []string
	for _, n := range w.svcNodes {
		if w.nodeStatus[n] == "online" {
			out = append(out, n)
		}
	}
	return out
}

// checkServices asks every node at once and hands the reports to Run.
func (w *Watcher) checkServices(ctx context.Context, nodes []string, done chan<- []serviceReport) {
	reports := make([]serviceReport, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Go(func() { reports[i] = w.askNode(ctx, node) })
	}
	wg.Wait()
	done <- reports // room for one round, and only one is under way
}

func (w *Watcher) askNode(ctx context.Context, node string) serviceReport {
	cctx, cancel := context.WithTimeout(ctx, serviceCheckTimeout+10*time.Second)
	defer cancel()
	rep := serviceReport{node: node}
	res, err := w.svc.Run(cctx, node, failedUnitsCommand, serviceCheckTimeout)
	switch {
	case err != nil:
		rep.err = err
	case res.TimedOut:
		rep.err = fmt.Errorf("systemctl did not answer within %s", serviceCheckTimeout)
	case res.ExitCode != 0:
		rep.err = fmt.Errorf("systemctl exited with status %d: %s", res.ExitCode, firstLine(res.Stderr))
	case res.Truncated:
		rep.err = errors.New("the list of failed units was cut short")
	default:
		rep.failed = parseFailedUnits(res.Stdout)
	}
	return rep
}

// parseFailedUnits reads `systemctl list-units --plain --no-legend` lines:
// UNIT LOAD ACTIVE SUB DESCRIPTION. A leading status glyph (a systemd that
// ignores --plain) is skipped; rows that are not failed services are left out.
func parseFailedUnits(out string) []string {
	var units []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "●" || f[0] == "*" || f[0] == "×") {
			f = f[1:]
		}
		if len(f) < 4 || !strings.HasSuffix(f[0], ".service") || f[2] != "failed" {
			continue
		}
		if !slices.Contains(units, f[0]) {
			units = append(units, f[0])
		}
	}
	return units
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if line, _, ok := strings.Cut(s, "\n"); ok {
		return line
	}
	if s == "" {
		return "no message"
	}
	return s
}

// serviceAlert is the alert for unit on node.
func serviceAlert(node, unit string) alertSpec {
	name := strings.TrimSuffix(unit, ".service")
	return alertSpec{key: serviceKey(node, unit), kind: store.AlertServiceFailed, subject: store.ServiceSubject(node, name),
		service: name, severity: store.SeverityWarning, node: node,
		raise:   fmt.Sprintf("service %s on %s has failed", unit, node),
		resolve: fmt.Sprintf("service %s on %s is no longer failed", unit, node)}
}

// noteServices raises an alert for each failed unit and resolves those of the
// node's units that are failed no more. A node that could not be asked is
// logged once, until it can be again.
func (w *Watcher) noteServices(ctx context.Context, reports []serviceReport) {
	if ctx.Err() != nil {
		return // stopping: an answer cut short says nothing
	}
	for _, r := range reports {
		if r.err != nil {
			if !w.sshFailing[r.node] {
				w.sshFailing[r.node] = true
				w.log.Warn("cannot read the failed services of a node over SSH; its service alerts stay as they are",
					"node", r.node, "err", r.err)
			}
			continue
		}
		if w.sshFailing[r.node] {
			delete(w.sshFailing, r.node)
			w.log.Info("the failed services of a node can be read over SSH again", "node", r.node)
		}
		failed := map[string]bool{}
		for _, unit := range r.failed {
			failed[serviceKey(r.node, unit)] = true
			w.alert(ctx, serviceAlert(r.node, unit), true)
		}
		var cleared []string
		for key := range w.open {
			if node, _ := serviceKeyNode(key); node == r.node && !failed[key] {
				cleared = append(cleared, key)
			}
		}
		for _, key := range cleared {
			w.alert(ctx, serviceAlert(r.node, strings.TrimPrefix(key, "service-failed:"+r.node+"/")), false)
		}
	}
}

// resolveUnasked resolves the service alerts of nodes that will not be asked
// again — not configured for the check (or no check at all), or no longer in
// the cluster — after a nodes poll that worked: nothing else would clear them.
// Those of an offline node stay: its units are unknown, not fixed.
func (w *Watcher) resolveUnasked(ctx context.Context) {
	for key, o := range w.open {
		node, ok := serviceKeyNode(key)
		if !ok {
			continue
		}
		if _, inCluster := w.nodeStatus[node]; inCluster && slices.Contains(w.svcNodes, node) {
			continue
		}
		delete(w.open, key)
		_, _ = w.store.ResolveEvent(ctx, o.id, store.Jarvis)
	}
}
