package tools

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// problemsSaying lists the problems holding every one of words.
func problemsSaying(h ClusterHealth, words ...string) []string {
	var out []string
	for _, p := range h.Problems {
		all := true
		for _, w := range words {
			all = all && strings.Contains(p, w)
		}
		if all {
			out = append(out, p)
		}
	}
	return out
}

func TestClusterHealth(t *testing.T) {
	env, _ := readEnv(t, nil, nil)
	got, js := readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})

	if got.HA == nil || !got.HA.Enabled || !got.HA.Quorate || !strings.HasPrefix(got.HA.ManagerStatus, "pve (active, ") ||
		!reflect.DeepEqual(got.HA.Resources, []HAResourceOut{{"vm:101", "started", "pve", "started"}, {"vm:102", "started", "pve", "started"}}) {
		t.Errorf("ha = %+v", got.HA)
	}
	if len(got.Replication) != 1 || got.Replication[0].ID != "102-0" || got.Replication[0].Guest != 102 || got.Replication[0].Target != "home" ||
		got.Replication[0].LastSync != "" || got.Replication[0].FailCount != 3 || got.Replication[0].Duration != 0.4 ||
		!strings.Contains(got.Replication[0].Error, "missing replicate feature on volume 'local-lvm:vm-102-disk-0'") {
		t.Errorf("replication = %+v", got.Replication)
	}
	var members map[string]any
	_ = json.Unmarshal([]byte(js), &members)
	if _, ok := members["ceph"]; ok {
		t.Errorf("ceph is reported on a cluster without it: %s", js)
	}
	wantUpdates := []NodeUpdates{
		{Node: "agent", Packages: []string{}},
		{Node: "agent1", Count: 2, Packages: []string{"libxml2-16", "qemu-server"}},
		{Node: "home", Count: 5, Packages: []string{"libssl3t64", "openssl", "proxmox-kernel-6.17", "pve-manager", "tzdata"}},
		{Node: "pve", Packages: []string{}},
	}
	if !reflect.DeepEqual(got.Updates, wantUpdates) {
		t.Errorf("updates = %+v", got.Updates)
	}
	soon := 0
	for _, c := range got.Certificates {
		if c.ExpiresSoon {
			soon++
			if c.Node != "agent" || c.Filename != "pve-ssl.pem" || c.DaysLeft != 16 || !strings.Contains(c.Subject, "CN=agent.lan") {
				t.Errorf("expiring certificate %+v, want agent's pve-ssl.pem with 16 days left", c)
			}
		}
		if _, err := time.Parse(time.RFC3339, c.NotAfter); err != nil || c.Issuer == "" {
			t.Errorf("certificate %+v", c)
		}
	}
	if len(got.Certificates) != 8 || soon != 1 {
		t.Errorf("%d certificates, %d expiring soon; want 2 per node, 1 soon", len(got.Certificates), soon)
	}
	want := []string{
		"replication job 102-0 (VM 102 'db01' to node home) failed 3 times in a row: missing replicate feature on volume 'local-lvm:vm-102-disk-0'; it has never completed",
		"certificate pve-ssl.pem of node agent expires in 16 days (" + got.Certificates[1].NotAfter + "); renew it before then",
	}
	if !reflect.DeepEqual(got.Problems, want) {
		t.Errorf("problems =\n%q\nwant\n%q", got.Problems, want)
	}
}

// A node that cannot be read is a problem in the answer, not its failure.
func TestClusterHealthWithANodeDown(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	sim.SetNodeOffline("agent", true)
	got, _ := readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	if len(problemsSaying(got, "node agent is offline", "updates and certificates were not read")) != 1 ||
		len(problemsSaying(got, "resource manager on node agent does not report")) != 1 ||
		len(problemsSaying(got, "certificate pve-ssl.pem of node agent")) != 0 {
		t.Errorf("problems = %q", got.Problems)
	}
	for _, u := range got.Updates {
		if u.Node == "agent" {
			t.Errorf("updates of a node down: %+v", u)
		}
	}
	if len(got.Updates) != 3 || len(got.Certificates) != 6 {
		t.Errorf("updates %d, certificates %d; want those of the 3 nodes up", len(got.Updates), len(got.Certificates))
	}

	// The node lists itself online, but its API is down.
	env, sim = readEnv(t, nil, nil)
	sim.FailNext("/nodes/pve/apt", 595, "No route to host")
	sim.FailNext("/nodes/pve/certificates", 595, "No route to host")
	got, _ = readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	if len(problemsSaying(got, "node pve could not be reached", "No route to host", "updates and certificates were not read")) != 1 {
		t.Errorf("problems = %q", got.Problems)
	}
}

// Sections that are not set up are left out; Ceph, where installed, reports.
func TestClusterHealthSections(t *testing.T) {
	env, _ := readEnv(t, nil, answering(map[string]string{
		"/cluster/ha/resources": `{"data":[]}`,
		"/cluster/replication":  `{"data":[]}`,
		"/cluster/ceph/status": `{"data":{"fsid":"8c1b","health":{"status":"HEALTH_WARN","checks":{
			"OSD_DOWN":{"severity":"HEALTH_WARN","summary":{"message":"1 osds down","count":1},"muted":false},
			"PG_DEGRADED":{"severity":"HEALTH_WARN","summary":{"message":"Degraded data redundancy: 12/3456 objects degraded","count":12},"muted":false}}},
			"monmap":{"epoch":3,"num_mons":3},"osdmap":{"epoch":812,"num_osds":6,"num_up_osds":5,"num_in_osds":6},
			"pgmap":{"num_pgs":129,"bytes_used":1099511627776,"bytes_avail":3298534883328,"bytes_total":4398046511104}}}`,
	}))
	got, js := readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	var members map[string]any
	_ = json.Unmarshal([]byte(js), &members)
	for _, m := range []string{"ha", "replication"} {
		if _, ok := members[m]; ok {
			t.Errorf("%s is reported though not configured: %s", m, js)
		}
	}
	wantCeph := &CephHealth{Health: "HEALTH_WARN", OSDs: 6, OSDsUp: 5, OSDsIn: 6, Monitors: 3, Usage: usage(1<<40, 4<<40),
		Checks: []string{"OSD_DOWN (HEALTH_WARN): 1 osds down", "PG_DEGRADED (HEALTH_WARN): Degraded data redundancy: 12/3456 objects degraded"}}
	if !reflect.DeepEqual(got.Ceph, wantCeph) {
		t.Errorf("ceph = %+v\nwant %+v", got.Ceph, wantCeph)
	}
	if len(problemsSaying(got, "Ceph reports HEALTH_WARN", "OSD_DOWN (HEALTH_WARN): 1 osds down; PG_DEGRADED")) != 1 {
		t.Errorf("problems = %q", got.Problems)
	}

	// Ceph failing otherwise than "not installed" is a problem.
	env, sim := readEnv(t, nil, nil)
	sim.FailNext("/cluster/ceph/status", 500, "got timeout")
	got, _ = readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	if got.Ceph != nil || len(problemsSaying(got, "Ceph's status could not be read", "got timeout")) != 1 {
		t.Errorf("ceph %+v, problems %q", got.Ceph, got.Problems)
	}
}

// A privilege missing for one section costs that section, named.
func TestClusterHealthWithoutPrivileges(t *testing.T) {
	without := func(missing ...string) []pvesim.ACL {
		var held []string
		for _, p := range pvesim.AllPrivileges() {
			if !slices.Contains(missing, p) {
				held = append(held, p)
			}
		}
		return []pvesim.ACL{{Path: "/", Privileges: held, Propagate: true}}
	}
	env, _ := readEnv(t, without("Sys.Modify"), nil)
	got, _ := readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	if len(problemsSaying(got, "pending updates of node", "Permission check failed (/nodes/", "Sys.Modify)")) != 4 || len(got.Updates) != 0 ||
		len(got.Certificates) != 8 || got.HA == nil {
		t.Errorf("without Sys.Modify: updates %+v, problems %q", got.Updates, got.Problems)
	}
	env, _ = readEnv(t, without("Sys.Audit", "VM.Audit"), nil)
	got, _ = readInto[ClusterHealth](t, env, "get_cluster_health", map[string]any{})
	// Ceph's check is passed with Datastore.Audit; replication jobs are
	// hidden, not refused.
	if got.HA != nil || len(problemsSaying(got, "HA's resources could not be read", "Permission check failed (/, Sys.Audit)")) != 1 ||
		got.Replication != nil || len(got.Problems) != 2 {
		t.Errorf("without Sys.Audit and VM.Audit: ha %+v, replication %+v, problems %q", got.HA, got.Replication, got.Problems)
	}
}

func TestNodeUpdatesAndCertificates(t *testing.T) {
	var ups []pve.AptUpdate
	for _, name := range []string{"m", "l", "k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"} {
		ups = append(ups, pve.AptUpdate{Package: name, Origin: "Debian"})
	}
	ups[0].Origin = "Debian-Security"
	got := nodeUpdates("pve", ups)
	if got.Count != 13 || got.Security == nil || *got.Security != 1 || !reflect.DeepEqual(got.Packages, strings.Split("abcdefghij", "")) {
		t.Errorf("updates = %+v", got)
	}
	if got := nodeUpdates("pve", ups[1:2]); got.Security != nil {
		t.Errorf("security told without a security origin: %+v", got)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		notAfter time.Time
		days     int64
		soon     bool
	}{
		{now.Add(400 * 24 * time.Hour), 400, false},
		{now.Add(30 * 24 * time.Hour), 30, false},
		{now.Add(30*24*time.Hour - time.Minute), 29, true},
		{now.Add(time.Hour), 0, true},
		{now.Add(-time.Hour), -1, true},
		{now.Add(-24 * time.Hour), -1, true},
		{now.Add(-25 * time.Hour), -2, true},
	} {
		co := certificateOut("pve", pve.CertificateInfo{Filename: "pve-ssl.pem", NotAfter: pve.Int(c.notAfter.Unix())}, now)
		if co.DaysLeft != c.days || co.ExpiresSoon != c.soon || co.NotAfter != c.notAfter.UTC().Format(time.RFC3339) {
			t.Errorf("not after %s: %+v, want %d days left, soon %v", c.notAfter, co, c.days, c.soon)
		}
	}
}
