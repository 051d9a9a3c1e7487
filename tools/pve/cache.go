package pve

// Read coalescing: many callers asking the same thing at once (a burst of
// get_vms from several agents, the watcher's poll, a tool's own lookups) cost
// the cluster one request. Answers are kept for Config.CacheFor at most and
// forgotten the moment Jarvis changes anything.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Observer is told about every upstream request and cache lookup. Its methods
// must be cheap and safe for concurrent use.
type Observer interface {
	// ObserveUpstream: one HTTP request to one endpoint. op is the method and the
	// path with its variable parts replaced ("GET /nodes/{node}/qemu/{vmid}/status/current"), so label
	// cardinality stays bounded; failed is true for transport errors and non-2xx answers.
	ObserveUpstream(endpoint, op string, failed bool, d time.Duration)
	// ObserveCache: one GET lookup; result is "hit", "miss" or "shared" (joined an in-flight read).
	ObserveCache(op string, result string)
}

// Cache lookup results, as ObserveCache reports them.
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheShared = "shared"
)

type freshKey struct{}

// WithFresh marks reads made under ctx as needing the cluster's state now: they
// skip the cache and any shared read already under way, go upstream, and store
// what they get for the reads after them. For checks right before a change.
func WithFresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

func isFresh(ctx context.Context) bool {
	fresh, _ := ctx.Value(freshKey{}).(bool)
	return fresh
}

// Invalidate forgets every cached answer, and keeps reads already under way from
// storing theirs. Every write the client sends does this itself; call it after
// changing the cluster some other way (a command over SSH).
func (c *Client) Invalidate() { c.cache.invalidate() }

// readCache holds the data of successful GET answers for ttl, and the reads under way.
type readCache struct {
	ttl time.Duration // 0: nothing is cached or shared

	mu sync.Mutex
	// gen counts invalidations. A read remembers it when it starts and stores its
	// answer only if it has not moved: an answer asked for before a write may
	// show the cluster as it was before.
	gen uint64
	// seq orders reads by when they started, so a slow older answer never
	// replaces a newer one.
	seq     uint64
	entries map[string]cacheEntry
	// flying holds the flight keys with a shared read under way, to tell a miss
	// (starts one) from a caller joining it.
	flying  map[string]bool
	flights singleflight.Group
	// running holds the status paths of tasks seen running or started by this
	// client: when one of them is seen stopped, the cluster changed.
	running map[string]bool
}

type cacheEntry struct {
	data json.RawMessage // the answer's "data", never handed out: each caller decodes its own copy
	at   time.Time       // when it arrived
	seq  uint64
}

func newReadCache(ttl time.Duration) readCache {
	return readCache{ttl: ttl, entries: map[string]cacheEntry{}, flying: map[string]bool{}, running: map[string]bool{}}
}

func (rc *readCache) invalidate() {
	rc.mu.Lock()
	rc.gen++
	clear(rc.entries)
	rc.mu.Unlock()
}

// startLocked returns the generation and sequence number of a read starting now.
func (rc *readCache) startLocked() (gen, seq uint64) {
	rc.seq++
	return rc.gen, rc.seq
}

func (rc *readCache) storeLocked(key string, data json.RawMessage, gen, seq uint64, now time.Time) {
	if gen != rc.gen {
		return
	}
	if old, ok := rc.entries[key]; ok && old.seq > seq {
		return
	}
	rc.entries[key] = cacheEntry{data: data, at: now, seq: seq}
}

// forget drops an entry some caller could not decode: errors are never served
// from the cache.
func (rc *readCache) forget(key string, seq uint64) {
	rc.mu.Lock()
	if e, ok := rc.entries[key]; ok && e.seq == seq {
		delete(rc.entries, key)
	}
	rc.mu.Unlock()
}

// flight is what a shared read hands every caller waiting for it.
type flight struct {
	data json.RawMessage
	seq  uint64
}

// get answers a GET: from the cache, by joining the same read under way, or upstream.
func (c *Client) get(ctx context.Context, path string, params url.Values, out any) error {
	// Task status and logs are never cached nor shared: WaitTask polls them and
	// must see a task's progress, and its end, at once.
	if c.cache.ttl <= 0 || isTaskPath(path) {
		data, err := c.fetch(ctx, http.MethodGet, path, params)
		if err != nil {
			return err
		}
		c.noteTaskEnd(path, data)
		return decodeRaw(http.MethodGet, path, data, out)
	}
	key := path + "?" + params.Encode()
	op := opTemplate(http.MethodGet, path)
	rc := &c.cache

	if isFresh(ctx) {
		rc.mu.Lock()
		gen, seq := rc.startLocked()
		rc.mu.Unlock()
		data, err := c.fetch(ctx, http.MethodGet, path, params)
		if err != nil {
			return err
		}
		rc.mu.Lock()
		rc.storeLocked(key, data, gen, seq, c.now())
		rc.mu.Unlock()
		return c.decodeCached(key, seq, path, data, out)
	}

	now := c.now()
	rc.mu.Lock()
	if e, ok := rc.entries[key]; ok && !now.Before(e.at) && now.Sub(e.at) < rc.ttl {
		rc.mu.Unlock()
		c.observeCache(op, CacheHit)
		return c.decodeCached(key, e.seq, path, e.data, out)
	}
	if err := ctx.Err(); err != nil {
		rc.mu.Unlock()
		return fmt.Errorf("pve: GET %s: %w", path, err)
	}
	gen, seq := rc.startLocked()
	// The generation is part of the flight's key: a read starting after a write
	// never joins one that started before it.
	fk := strconv.FormatUint(gen, 10) + " " + key
	result := CacheShared
	if !rc.flying[fk] {
		rc.flying[fk] = true
		result = CacheMiss
	}
	// The shared read must not end because the caller that started it hung up:
	// it runs without the caller's cancellation, under the client's own deadline
	// (fetch applies it), and each caller stops waiting when its own ctx ends.
	detached := context.WithoutCancel(ctx)
	ch := rc.flights.DoChan(fk, func() (any, error) {
		data, err := c.fetch(detached, http.MethodGet, path, params)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		// Done: later callers find the answer stored, or start a read of their
		// own, rather than join this one as it ends.
		delete(rc.flying, fk)
		rc.flights.Forget(fk)
		if err != nil {
			return nil, err // shared with the callers waiting now, never stored
		}
		rc.storeLocked(key, data, gen, seq, c.now())
		return flight{data: data, seq: seq}, nil
	})
	rc.mu.Unlock()
	c.observeCache(op, result)

	select {
	case r := <-ch:
		if r.Err != nil {
			return r.Err
		}
		f := r.Val.(flight)
		return c.decodeCached(key, f.seq, path, f.data, out)
	case <-ctx.Done():
		return fmt.Errorf("pve: GET %s: %w", path, ctx.Err())
	}
}

// decodeCached decodes a caller's own copy of cached data; what cannot be
// decoded is not served again.
func (c *Client) decodeCached(key string, seq uint64, path string, data json.RawMessage, out any) error {
	if err := decodeRaw(http.MethodGet, path, data, out); err != nil {
		c.cache.forget(key, seq)
		return err
	}
	return nil
}

// noteTaskEnd forgets every cached answer when a task status read finds a
// task stopped that was running (or that this client started): a task changes
// the cluster when it ends, not when it is started, so answers cached while it
// ran (a guest still "stopped") are stale now. Reading the status of a task
// long finished changes nothing, and leaves the cache alone.
func (c *Client) noteTaskEnd(path string, data json.RawMessage) {
	if !strings.Contains(path, "/tasks/") || !strings.HasSuffix(path, "/status") {
		return
	}
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(data, &st) != nil {
		return
	}
	rc := &c.cache
	rc.mu.Lock()
	ended := false
	if st.Status == "running" {
		if len(rc.running) >= maxWatchedTasks {
			clear(rc.running) // forgotten tasks only cost a later invalidation
		}
		rc.running[path] = true
	} else if rc.running[path] {
		delete(rc.running, path)
		ended = true
	}
	rc.mu.Unlock()
	if ended {
		c.Invalidate()
	}
}

// maxWatchedTasks bounds the tasks remembered as running.
const maxWatchedTasks = 1024

// noteTaskStarted remembers a task this client started, so its end drops the
// cache even when no read saw it running.
func (c *Client) noteTaskStarted(node, upid string) {
	rc := &c.cache
	rc.mu.Lock()
	if len(rc.running) >= maxWatchedTasks {
		clear(rc.running)
	}
	rc.running[apiPath("nodes", node, "tasks", upid, "status")] = true
	rc.mu.Unlock()
}

func isTaskPath(path string) bool { return strings.Contains(path, "/tasks/") }

func (c *Client) observeCache(op, result string) {
	if c.observer != nil {
		c.observer.ObserveCache(op, result)
	}
}

// opTemplate names an API call for metrics with its variable parts replaced,
// "GET /nodes/{node}/qemu/{vmid}/status/current", so one label value stands for
// every node, guest, task, snapshot and storage.
func opTemplate(method, path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := 1; i < len(segs); i++ {
		prev := segs[i-1]
		switch {
		case prev == "nodes" && i == 1:
			segs[i] = "{node}"
		// Whatever follows qemu/lxc is a VMID; the client sends only numbers, and
		// anything else must not add label values either.
		case (prev == "qemu" || prev == "lxc") && i == 3:
			segs[i] = "{vmid}"
		case prev == "tasks" && i == 3:
			segs[i] = "{upid}"
		case prev == "snapshot" && i == 5:
			segs[i] = "{snapname}"
		case prev == "storage" && (i == 3 || i == 1):
			segs[i] = "{storage}"
		case strings.HasPrefix(segs[i], "UPID:"):
			segs[i] = "{upid}"
		}
	}
	return method + " /" + strings.Join(segs, "/")
}
