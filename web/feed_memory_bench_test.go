//go:build linux || darwin

package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkFeedIdleSubscriberMemory is what the server keeps for one idle
// feed stream, alone: the 1,000 streams are opened by a child process (this
// test binary, running BenchmarkFeedSubscriberProcess), so only the server's
// side of each connection is in this process's heap and stacks.
//
//	go test ./web -run '^$' -bench FeedIdleSubscriberMemory -benchtime 1x
//
// Target (not asserted): ≤ 64 KiB per idle subscriber.
func BenchmarkFeedIdleSubscriberMemory(b *testing.B) {
	const n = feedSubscribers
	feedRaiseFileLimit(b, uint64(n)+512)
	h := newWebHarness(b, func(o *Options) { o.Heartbeat = 15 * time.Second })
	op := h.login()
	before := feedHeapAndStacks()
	child := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkFeedSubscriberProcess$", "-test.benchtime=1x")
	child.Env = append(os.Environ(), "JARVIS_FEED_URL="+h.ts.URL+"/api/events", "JARVIS_FEED_TOKEN="+op, "JARVIS_FEED_STREAMS="+strconv.Itoa(n))
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = child.Wait() }()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "streams ready") {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("the subscriber process ended before its streams were ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		b.Fatal("the subscriber process did not open its streams within 90 s")
	}
	feedWaitFor(b, "every stream to subscribe", func() bool { return h.subscribers() == n })
	for b.Loop() {
	}
	b.ReportMetric(float64(int64(feedHeapAndStacks())-int64(before))/n, "server-bytes/subscriber")
}

// BenchmarkFeedSubscriberProcess is the child of BenchmarkFeedIdleSubscriberMemory:
// it opens the streams, says so, and holds them until its stdin closes. Run on
// its own it has nothing to do.
func BenchmarkFeedSubscriberProcess(b *testing.B) {
	url, token := os.Getenv("JARVIS_FEED_URL"), os.Getenv("JARVIS_FEED_TOKEN")
	n, _ := strconv.Atoi(os.Getenv("JARVIS_FEED_STREAMS"))
	if url == "" || n == 0 {
		b.Skip("started by BenchmarkFeedIdleSubscriberMemory only")
	}
	feedRaiseFileLimit(b, uint64(n)+512)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range n {
		opened.Add(1)
		sem <- struct{}{}
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				fmt.Fprintln(os.Stderr, "feed stream:", err, resp)
				os.Exit(1)
			}
			br := bufio.NewReader(resp.Body)
			_, _ = br.ReadString('\n') // "retry: 3000"
			<-sem
			opened.Done()
			_, _ = io.Copy(io.Discard, br)
		}()
	}
	opened.Wait()
	fmt.Println("streams ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for b.Loop() {
	}
}
