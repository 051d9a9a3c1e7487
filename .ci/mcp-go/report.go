package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// tally counts checks and keeps the failed ones.
type tally struct {
	total    int
	failures []string
}

func (t *tally) check(ok bool, format string, args ...any) bool {
	t.total++
	msg := fmt.Sprintf(format, args...)
	if ok {
		fmt.Printf("  ok   %s\n", msg)
	} else {
		t.failures = append(t.failures, msg)
		fmt.Printf("  FAIL %s\n", msg)
	}
	return ok
}

func (t *tally) fail(format string, args ...any) { t.check(false, format, args...) }

func (t *tally) line(prefix, negotiated string) string {
	proto := ""
	if negotiated != "" {
		proto = fmt.Sprintf(" (protocol %s)", negotiated)
	}
	if len(t.failures) == 0 && t.total > 0 {
		return fmt.Sprintf("%s: PASS — %d/%d checks%s", prefix, t.total, t.total, proto)
	}
	first := "no checks ran"
	if len(t.failures) > 0 {
		first = t.failures[0]
	}
	return fmt.Sprintf("%s: FAIL — %d/%d checks%s; first failure: %s", prefix, t.total-len(t.failures), t.total, proto, first)
}

// lockedBuffer collects a child's stderr, which mcp-go writes from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// text joins a result's text content.
func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		switch tc := c.(type) {
		case mcp.TextContent:
			b.WriteString(tc.Text)
		case *mcp.TextContent:
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + strings.ReplaceAll(err.Error(), "\n", " ")
}

// resultNote says what an error result said, for a failing check's message.
func resultNote(res *mcp.CallToolResult) string {
	if res == nil || !res.IsError {
		return ""
	}
	t := text(res)
	if len(t) > 300 {
		t = t[:300] + "…"
	}
	return fmt.Sprintf(" [isError: %s]", t)
}

func refusalNote(res *mcp.CallToolResult, sc map[string]any) string {
	if d, ok := sc["decision"].(string); ok && res.IsError {
		return " (refusal: " + d + ")"
	}
	return ""
}
