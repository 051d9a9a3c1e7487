//go:build linux || darwin

// (Setrlimit's field types differ elsewhere.)

package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

// feedSubscribers is how many consoles follow the feed in BenchmarkFeedFanOut.
const feedSubscribers = 1000

// BenchmarkFeedFanOut follows the feed with 1,000 SSE streams over real
// loopback HTTP (operator token, the whole app) and publishes one event per
// op; an op ends when every stream has read the event. It reports the
// publish→receive latency over all streams and events (p50-ms, p99-ms,
// max-ms; from before store.Publish, so the event's insert is included), the
// events lost (any is a failure) and the memory of an idle stream:
//
//	go test ./web -run '^$' -bench FeedFanOut -benchtime=200x
//
// Targets (not asserted): p99 ≤ 50 ms, ≤ 64 KiB per idle subscriber.
func BenchmarkFeedFanOut(b *testing.B) {
	const n = feedSubscribers
	// Each stream is a client and a server socket in this process.
	feedRaiseFileLimit(b, 2*n+512)
	// The production heartbeat: the harness's 100 ms would have 1,000 streams
	// verify their token 10,000 times a second and measure that instead.
	h := newWebHarness(b, func(o *Options) { o.Heartbeat = 15 * time.Second })
	op := h.login()
	// One connection per stream, none refused or queued by the client.
	client := &http.Client{Transport: &http.Transport{
		MaxConnsPerHost: 0, MaxIdleConnsPerHost: n, DisableCompression: true,
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var delivered, ready atomic.Int64
	progress := make(chan struct{}, 1)
	readers := make([]*feedReader, n)
	var running sync.WaitGroup

	// Both ends of every stream live in this process (the client's goroutines,
	// buffers and connections too), so the difference is an upper bound for
	// what the server keeps per idle subscriber.
	before := feedHeapAndStacks()
	sem := make(chan struct{}, 64) // a burst of 1,000 SYNs could overflow the listen backlog
	var opening sync.WaitGroup
	openErr := make(chan error, n)
	for i := range readers {
		readers[i] = &feedReader{}
		sem <- struct{}{}
		opening.Add(1)
		go func(r *feedReader) {
			defer opening.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/api/events", nil)
			req.Header.Set("Authorization", "Bearer "+op)
			resp, err := client.Do(req)
			if err != nil {
				openErr <- err
				return
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				openErr <- errors.New("feed answered " + resp.Status)
				return
			}
			running.Add(1)
			go func() {
				defer running.Done()
				defer resp.Body.Close()
				r.read(resp, &ready, &delivered, progress)
			}()
		}(readers[i])
	}
	opening.Wait()
	close(openErr)
	for err := range openErr {
		b.Fatalf("opening a feed stream: %v", err)
	}
	// Idle means subscribed and past the stream's opening lines.
	feedWaitFor(b, "every stream to subscribe and read its first lines", func() bool {
		return h.subscribers() == n && ready.Load() == n
	})
	idleBytes := float64(int64(feedHeapAndStacks())-int64(before)) / n

	sent := map[uint64]time.Time{}
	var want int64
	lostWait := false
	for b.Loop() {
		ev := &store.Event{Type: store.EventSystem, Source: "bench", Summary: "fan-out"}
		t0 := time.Now()
		if err := h.store.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		sent[ev.ID] = t0
		want += n
		if !feedWaitDelivered(&delivered, want, progress) {
			lostWait = true
			break
		}
	}

	cancel()
	running.Wait()
	var lat []time.Duration
	lost := 0
	for _, r := range readers {
		got := make(map[uint64]time.Time, len(r.ids))
		for i, id := range r.ids {
			got[id] = r.at[i]
		}
		for id, t0 := range sent {
			at, ok := got[id]
			if !ok {
				lost++
				continue
			}
			lat = append(lat, at.Sub(t0))
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if len(lat) > 0 {
		b.ReportMetric(ms(feedPercentile(lat, 0.50)), "p50-ms")
		b.ReportMetric(ms(feedPercentile(lat, 0.99)), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
	b.ReportMetric(float64(lost), "lost-events")
	// Reported after the loop: b.Loop's first call drops metrics reported before it.
	b.ReportMetric(idleBytes, "bytes/subscriber")
	// Of which the subscription's channel alone, allocated full when it opens
	// (before the allocator rounds it up to its size class). It holds pointers
	// since subscribers share each event: 2 KiB; holding events it was 42 KiB.
	b.ReportMetric(float64(feedBuffer*reflect.TypeFor[*store.Event]().Size()), "chan-bytes/subscriber")
	if lost > 0 || lostWait {
		b.Fatalf("%d of %d deliveries lost (%d events × %d subscribers): every subscriber must receive every event",
			lost, len(sent)*n, len(sent), n)
	}
}

// feedReader reads one SSE stream and notes when each event arrived.
type feedReader struct {
	ids []uint64
	at  []time.Time
}

func (r *feedReader) read(resp *http.Response, ready, delivered *atomic.Int64, progress chan<- struct{}) {
	// Events are a few hundred bytes; a small buffer keeps the client's share
	// of the memory figure small.
	br := bufio.NewReaderSize(resp.Body, 1024)
	var id uint64
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the rest of a long data line
		}
		if err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			id, _ = strconv.ParseUint(string(bytes.TrimSpace(line[4:])), 10, 64)
		case len(bytes.TrimSpace(line)) == 0: // a blank line ends a message
			now := time.Now()
			if first {
				first = false
				ready.Add(1)
			}
			if id != 0 {
				r.ids = append(r.ids, id)
				r.at = append(r.at, now)
				id = 0
				delivered.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}
}

// feedWaitDelivered waits until want deliveries were counted. It gives up when
// nothing arrives for feedStall: the missing deliveries are then lost.
func feedWaitDelivered(delivered *atomic.Int64, want int64, progress <-chan struct{}) bool {
	const feedStall = 30 * time.Second
	stall := time.NewTimer(feedStall)
	defer stall.Stop()
	for delivered.Load() < want {
		select {
		case <-progress:
			stall.Reset(feedStall)
		case <-stall.C:
			return false
		}
	}
	return true
}

// feedPercentile is the nearest-rank percentile of sorted durations.
func feedPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func feedHeapAndStacks() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers released
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func feedWaitFor(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("waited 60 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// feedRaiseFileLimit makes room for need open files or says how to.
func feedRaiseFileLimit(b *testing.B, need uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("reading the open-file limit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	lim.Cur = need
	lim.Max = max(lim.Max, need) // raising the hard limit needs privilege; try anyway
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("this benchmark needs %d open files and the limit could not be raised (%v): run `ulimit -n %d` first", need, err, need)
	}
}
