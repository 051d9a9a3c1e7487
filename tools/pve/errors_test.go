package pve

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// PVE's answers for a node name that is not in the cluster, and answers that
// look alike but are not about the node.
func TestIsUnknownNode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&APIError{Status: 500, Message: "hostname lookup 'nas' failed - failed to get address info for: nas: Name or service not known"}, true},
		{fmt.Errorf("wrapped: %w", &APIError{Status: 500, Message: "hostname lookup 'x' failed - failed to get address info for: x: Temporary failure in name resolution"}), true},
		{&APIError{Status: 500, Message: "no such cluster node 'nas'"}, true},
		{&APIError{Status: 500, Message: "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"}, false},
		{&APIError{Status: 595, Message: "No route to host"}, false},
		{&APIError{Status: 400, Message: "hostname lookup 'x' failed"}, false},
		{errors.New("hostname lookup 'x' failed"), false},
		{nil, false},
	} {
		if got := IsUnknownNode(c.err); got != c.want {
			t.Errorf("IsUnknownNode(%v) = %t, want %t", c.err, got, c.want)
		}
	}
}

// The simulator answers an unknown node as PVE does, and the client keeps it
// recognisable.
func TestUnknownNodeOnTheSimulator(t *testing.T) {
	_, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	_, err := c.NodeStatus(context.Background(), "nas")
	if !IsUnknownNode(err) {
		t.Fatalf("NodeStatus(nas) = %v, want an unknown-node error", err)
	}
	_, err = c.GuestStatus(context.Background(), "pve", "qemu", 999)
	if err == nil || IsUnknownNode(err) {
		t.Fatalf("a missing guest on a known node is not an unknown node: %v", err)
	}
}
