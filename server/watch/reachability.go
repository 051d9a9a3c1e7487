package watch

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

// partStart is the check at start-up, beside the polls' parts.
const partStart = "start"

// pollParts is the order problems are listed in.
var pollParts = []string{partStart, store.ClusterNodes, store.ClusterGuests, store.ClusterStorage}

// checkAtStart pings the API once when the watcher starts, whoever listens: a
// new user's first look is the terminal `jarvis serve` runs in, and a cluster
// that cannot be read must be said there at once, not when a console opens.
func (w *Watcher) checkAtStart(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	w.note(ctx, partStart, w.pve.Ping(cctx))
}

// note records how one poll went and, when that changes what is wrong, says so:
// a WARN with the cause and a failing system event, or an INFO and a recovered
// event when every read works again. Polls that keep failing the same way say
// nothing more, whatever their number.
func (w *Watcher) note(ctx context.Context, part string, err error) {
	if err != nil && ctx.Err() != nil {
		return // stopping: not the cluster's fault
	}
	if err != nil {
		w.log.Debug("cluster poll failed", "part", part, "err", err)
	}
	now := time.Now()
	w.mu.Lock()
	if err == nil {
		delete(w.failing, part)
		delete(w.failing, partStart) // later reads tell more than the start did
		// The API answered, so whatever failed the API as a whole is over.
		for k, p := range w.failing {
			if p.whole {
				delete(w.failing, k)
			}
		}
	} else {
		p := Diagnose(err).ForCluster(w.cluster)
		p.Since = now
		if old, ok := w.failing[part]; ok && old.Error == p.Error {
			p.Since = old.Since
		}
		if p.whole {
			// The API as a whole now fails this way: another whole cause seen by
			// an earlier poll is out of date, and keeping it would report a
			// mixture while the polls come round.
			for k, old := range w.failing {
				if old.whole && old.Error != p.Error {
					delete(w.failing, k)
				}
			}
		}
		w.failing[part] = p
	}
	problems := w.problemsLocked()
	key := problemKey(problems)
	first := !w.checked
	w.checked = true
	changed := first || key != w.reported
	w.reported = key
	w.mu.Unlock()
	if changed {
		w.report(ctx, problems, key)
	}
}

// problemsLocked lists the distinct problems, in poll order, each with the
// earliest time it was seen.
func (w *Watcher) problemsLocked() []Problem {
	var out []Problem
	for _, part := range pollParts {
		p, ok := w.failing[part]
		if !ok {
			continue
		}
		dup := false
		for i := range out {
			if out[i].Error == p.Error {
				dup = true
				if p.Since.Before(out[i].Since) {
					out[i].Since = p.Since
				}
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// Problems returns what the polls currently find wrong with the cluster. While
// the watcher does not poll (Run is not running, or nobody follows the feed
// and nobody away must be told) it returns nil: it has not looked lately
// (health pings the API itself for that). With several clusters they are every cluster's, each error
// after its cluster's name.
func (w *Watcher) Problems() []Problem {
	var out []Problem
	for _, x := range w.all() {
		for _, p := range x.problems() {
			if x.cluster != "" {
				p.Error = "cluster " + x.cluster + ": " + p.Error
			}
			out = append(out, p)
		}
	}
	return out
}

// problems is Problems of this watcher's cluster alone.
func (w *Watcher) problems() []Problem {
	if !w.polling() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return nil
	}
	return w.problemsLocked()
}

func (w *Watcher) report(ctx context.Context, problems []Problem, key string) {
	if key == "" {
		if w.problemEvent == 0 && !w.failingSaid {
			return // readable from the start: nothing to say
		}
		w.log.Info("cluster reachable again", "was", w.eventKey)
		if w.problemEvent != 0 {
			_, _ = w.store.ResolveEvent(ctx, w.problemEvent, store.Jarvis)
		}
		w.problemEvent, w.eventKey, w.failingSaid = 0, "", false
		now := time.Now()
		details := store.DependencyDetails{Dependency: store.DependencyPVE, State: store.DependencyRecovered, Since: now}
		// Like an alert's resolution notice, it needs no action: stored resolved.
		w.publishSystem(ctx, &store.Event{Type: store.EventSystem, Severity: store.SeverityInfo, Source: source,
			Summary: "the Proxmox cluster can be read again", Details: store.EncodeDetails(details),
			Resolved: true, ResolvedAt: &now, ResolvedBy: store.Jarvis})
		return
	}
	fix := problemFix(problems)
	w.log.Warn("cannot read the Proxmox cluster", "cause", key, "fix", fix)
	w.failingSaid = true
	if w.problemEvent != 0 && w.eventKey == key {
		return // still open from a previous run, same cause
	}
	severity := store.SeverityWarning
	since := problems[0].Since
	for _, p := range problems {
		if p.whole {
			severity = store.SeverityCritical
		}
		if p.Since.Before(since) {
			since = p.Since
		}
	}
	details := store.DependencyDetails{Dependency: store.DependencyPVE, State: store.DependencyFailing, Error: key, Fix: fix, Since: since}
	ev := &store.Event{Type: store.EventSystem, Severity: severity, Source: source,
		Summary: "cannot read the Proxmox cluster: " + key, Details: store.EncodeDetails(details)}
	if !w.publishSystem(ctx, ev) {
		return
	}
	// The new cause supersedes the old one.
	if w.problemEvent != 0 {
		_, _ = w.store.ResolveEvent(ctx, w.problemEvent, store.Jarvis)
	}
	w.problemEvent, w.eventKey = ev.ID, key
}

func (w *Watcher) publishSystem(ctx context.Context, ev *store.Event) bool {
	if err := w.store.Publish(ctx, w.named(ev)); err != nil {
		w.log.Warn("cluster poll: publish", "err", err)
		return false
	}
	return true
}

// loadOpenProblem picks up the failing event a previous run left open, so the
// first good poll announces the recovery and a poll failing the same way does
// not announce it twice.
func (w *Watcher) loadOpenProblem(ctx context.Context) {
	open, err := w.store.ListEvents(ctx, store.EventFilter{Type: store.EventSystem, UnresolvedOnly: true, Limit: 1000})
	if err != nil {
		w.log.Warn("cluster poll: reading open system events", "err", err)
		return
	}
	for _, ev := range open { // newest first
		var d store.DependencyDetails
		if !w.ours(ev) || json.Unmarshal(ev.Details, &d) != nil || d.Dependency != store.DependencyPVE || d.State != store.DependencyFailing {
			continue // another cluster's watcher keeps it
		}
		if w.problemEvent == 0 {
			w.problemEvent, w.eventKey = ev.ID, d.Error
			continue
		}
		_, _ = w.store.ResolveEvent(ctx, ev.ID, store.Jarvis) // older ones were superseded
	}
}
