package main

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
)

// The demo's node shells must tell the same story as its Proxmox API: the same
// nodes, and on each node the same guests in the same state.
func TestDemoShellsAgreeWithTheDemoCluster(t *testing.T) {
	sim := pvesim.New(pvesim.Options{TokenID: "a@pve!b", TokenSecret: "c"})
	ts := httptest.NewTLSServer(sim)
	defer ts.Close()
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: ts.URL}}, TokenID: "a@pve!b", TokenSecret: "c",
		Fingerprint: pve.FingerprintOf(ts.Certificate())})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.ClusterResources(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	facts := map[string]sshsim.NodeFacts{}
	for _, f := range sshsim.DemoFacts() {
		facts[f.Name] = f
	}
	nodes := 0
	for _, r := range res {
		switch r.Type {
		case "node":
			nodes++
			f, ok := facts[r.Node]
			if !ok {
				t.Errorf("node %s has no simulated shell", r.Node)
				continue
			}
			if int64(f.MemTotalMiB)<<20 != int64(r.MaxMem) {
				t.Errorf("node %s: shell has %d MiB, API %d bytes", r.Node, f.MemTotalMiB, r.MaxMem)
			}
		case "qemu", "lxc":
			found := false
			for _, g := range facts[r.Node].Guests {
				if g.VMID == int(r.VMID) {
					found = true
					if g.Name != r.Name || g.Kind != r.Type || g.Status != r.Status {
						t.Errorf("guest %d: shell says %s %s %s, API %s %s %s", g.VMID, g.Name, g.Kind, g.Status, r.Name, r.Type, r.Status)
					}
				}
			}
			if !found && !bool(r.Template) {
				t.Errorf("guest %d (%s) on %s is missing from its node's shell", r.VMID, r.Name, r.Node)
			}
		}
	}
	if nodes != len(facts) {
		t.Errorf("API has %d nodes, shells %d", nodes, len(facts))
	}
}
