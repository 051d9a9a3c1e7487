package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
)

// The demo's node shells must tell the same story as its Proxmox API: the same
// nodes, and on each node the same guests in the same state; on the first
// simulated cluster and on a second one, named apart.
func TestDemoShellsAgreeWithTheDemoCluster(t *testing.T) {
	for i, name := range []string{"home", "lab"} {
		t.Run(name, func(t *testing.T) { demoShellsAgree(t, demoSite(i, name)) })
	}
}

func demoShellsAgree(t *testing.T, site pvesim.Site) {
	sim := pvesim.New(pvesim.Options{TokenID: "a@pve!b", TokenSecret: "c", Site: site})
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
	for _, f := range sshsim.DemoFactsAt(site.NodePrefix, site.VMIDOffset) {
		facts[f.Name] = f
	}
	nodes := 0
	for _, r := range res {
		if !strings.HasPrefix(r.Node, site.NodePrefix) {
			t.Errorf("%s %s is on node %s, not named for the site", r.Type, r.ID, r.Node)
		}
		if r.VMID != 0 && int(r.VMID) < 100+site.VMIDOffset {
			t.Errorf("guest %d is below the site's VMIDs (%d up)", r.VMID, 100+site.VMIDOffset)
		}
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
