package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// healthAnswer is what runHealthcheck reads of /api/health.
type healthAnswer struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	Uptime   int64  `json:"uptime_seconds"`
	Problems []struct {
		Dependency string `json:"dependency"`
		Error      string `json:"error"`
		Fix        string `json:"fix"`
	} `json:"problems"`
}

// runHealthcheck asks the local server for /api/health; it needs no secrets, so it
// works inside a distroless image as the HEALTHCHECK. It is a liveness check:
// "degraded" (Jarvis serves, but e.g. the cluster cannot be read) exits 0, as a
// restart would not mend it, but each problem is printed on a line of its own,
// where `docker inspect` shows it. "down" (503) or no answer fails.
func runHealthcheck(ctx context.Context, stdout io.Writer) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "4000"
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/api/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: Jarvis does not answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var h healthAnswer
	if err := json.Unmarshal(body, &h); err != nil || h.Status == "" {
		fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
		return fmt.Errorf("health: %s answered %s, but not as Jarvis does (is another program on PORT %s?)", url, resp.Status, port)
	}
	fmt.Fprintf(stdout, "%s (Jarvis %s, up %s)\n", h.Status, h.Version, time.Duration(h.Uptime)*time.Second)
	for _, p := range h.Problems {
		line := p.Dependency + ": " + oneLine(p.Error)
		// The fix is printed unless the cause already spells it out.
		if p.Fix != "" && !strings.Contains(p.Error, p.Fix) {
			line += " — to fix: " + oneLine(p.Fix)
		}
		fmt.Fprintln(stdout, line)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s: Jarvis is %s", resp.Status, h.Status)
	}
	return nil
}

// oneLine keeps a problem on its line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
