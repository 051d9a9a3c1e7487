package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// feedBuffer is how many events a subscriber may fall behind before it is dropped;
// a dropped browser reconnects with Last-Event-ID and replays from the store.
const feedBuffer = 256

// replayPage bounds one replay read.
const replayPage = 500

// events streams the feed as Server-Sent Events. The id of each message is the
// event's sequence number, so a reconnect with Last-Event-ID replays what was
// missed. Subscribing happens before the replay, and live events already replayed
// are skipped: no gap, no duplicate.
func (a *App) events(c echo.Context) error {
	req := c.Request()
	kinds, node, err := feedFilter(c)
	if err != nil {
		return err
	}
	cluster, err := a.feedCluster(c)
	if err != nil {
		return apiError(http.StatusBadRequest, err.Error(), nil)
	}
	var lastID uint64
	if v := req.Header.Get("Last-Event-ID"); v != "" {
		if lastID, err = eventID("Last-Event-ID", v, 0); err != nil {
			return err
		}
	}

	token := bearer(req)
	sub := a.opts.Store.Subscribe(feedBuffer)
	defer sub.Close()
	if a.opts.Watcher != nil {
		a.opts.Watcher.Acquire()
		defer a.opts.Watcher.Release()
	}

	w := c.Response()
	// Each write has its own deadline: a client that stops reading ends its own
	// stream instead of holding a goroutine forever (the server has no
	// WriteTimeout, which would cut healthy long streams).
	rc := http.NewResponseController(w)
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(a.opts.FeedWriteTimeout))
		return rc.Flush()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.SetWriteDeadline(time.Now().Add(a.opts.FeedWriteTimeout))
	if _, err := fmt.Fprint(w, "retry: 3000\n\n"); err != nil || flush() != nil {
		return nil
	}

	send := func(ev *store.Event) error {
		if ev.ID <= lastID {
			return nil
		}
		lastID = ev.ID
		if len(kinds) > 0 && !kinds[ev.Type] {
			return nil
		}
		if node != "" && ev.Node != node {
			return nil
		}
		if cluster != "" && ev.Cluster != cluster {
			return nil
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(a.opts.FeedWriteTimeout))
		_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b)
		return err
	}

	if req.Header.Get("Last-Event-ID") != "" {
		for {
			page, err := a.opts.Store.EventsAfter(req.Context(), lastID, replayPage)
			if err != nil {
				return nil
			}
			for _, ev := range page {
				if err := send(&ev); err != nil {
					return nil
				}
			}
			if flush() != nil {
				return nil
			}
			if len(page) < replayPage {
				break
			}
		}
	}

	heartbeat := time.NewTicker(a.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-req.Context().Done():
			return nil
		case <-a.feedDone:
			return nil
		case <-sub.Done():
			// Too slow: end the stream; the client reconnects and replays.
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			if send(ev) != nil || flush() != nil {
				return nil
			}
		case <-heartbeat.C:
			// A login ended by logout or a new password ends its streams too.
			if _, err := a.opts.Tokens.Verify(req.Context(), token); err != nil {
				return nil
			}
			_ = rc.SetWriteDeadline(time.Now().Add(a.opts.FeedWriteTimeout))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || flush() != nil {
				return nil
			}
		}
	}
}

func feedFilter(c echo.Context) (map[string]bool, string, error) {
	var kinds map[string]bool
	if v := c.QueryParam("kind"); v != "" {
		kinds = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if !store.IsEventKind(k) {
				return nil, "", apiError(http.StatusBadRequest, "kind must be a comma-separated list of tool, approval, cluster, alert, safety, system", nil)
			}
			kinds[k] = true
		}
	}
	node := c.QueryParam("node")
	if node != "" && !pveid.ValidNodeName(node) {
		return nil, "", apiError(http.StatusBadRequest, "node must be a node name", nil)
	}
	return kinds, node, nil
}

// feedCluster reads the events' cluster filter: with several clusters, one
// of them (or none given: every event); with one, the parameter is ignored,
// as every other unknown one is here, since every event is that cluster's.
// Events from before several clusters were configured, and those about no
// cluster (the switches, Jarvis itself), name none and pass no filter.
func (a *App) feedCluster(c echo.Context) (string, error) {
	names := a.opts.Server.ClusterNames()
	v := c.QueryParam("cluster")
	if len(names) < 2 || v == "" {
		return "", nil
	}
	if !slices.Contains(names, v) {
		return "", fmt.Errorf("no cluster %s: one of %s", v, strings.Join(names, ", "))
	}
	return v, nil
}
