package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jarvis-homelab/jarvis/server"
)

// runSafety shows or sets the live safety switches from the host, for operators
// who run jarvis stdio without the console. The change is announced on the feed
// and holds at once for every jarvis process on the same database, calls already
// waiting for an approval included.
func runSafety(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	keys := map[string]string{"kill-switch": server.PrefKillSwitch, "read-only": server.PrefReadOnly}
	states := map[string]bool{"on": true, "off": false}
	var key string
	var on bool
	switch len(args) {
	case 0:
	case 2:
		var ok1, ok2 bool
		key, ok1 = keys[args[0]]
		on, ok2 = states[args[1]]
		if ok1 && ok2 {
			break
		}
		fallthrough
	default:
		return usageError{"usage: jarvis safety [kill-switch|read-only on|off]"}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if key != "" {
		if err := srv.SetSwitch(ctx, key, on, "operator:cli"); err != nil {
			return err
		}
	}
	state, err := srv.SafetyState(ctx)
	if err != nil {
		return fmt.Errorf("reading the safety switches: %w", err)
	}
	word := map[bool]string{true: "on", false: "off"}
	fmt.Fprintf(stdout, "kill switch: %s\nread-only:   %s\n", word[state.KillSwitch], word[state.ReadOnly])
	return nil
}
