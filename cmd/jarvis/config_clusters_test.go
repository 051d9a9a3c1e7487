package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// cluster settings a usable cluster needs, under a prefix ("" for the
// unprefixed variables).
func clusterVars(prefix, nodes string) map[string]string {
	name := func(legacy string) string {
		if prefix == "" {
			return legacy
		}
		return prefix + strings.TrimPrefix(legacy, "JARVIS_")
	}
	return map[string]string{
		name("JARVIS_NODES"): nodes, name("PVE_TOKEN_ID"): "jarvis@pve!mcp", name("PVE_TOKEN_SECRET"): "uuid",
	}
}

func join(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestClusterConfig(t *testing.T) {
	secrets := map[string]string{"JWT_SECRET": strings.Repeat("s", 40), "JARVIS_PASSWORD": "operator-password-1"}
	home := clusterVars("JARVIS_CLUSTER_HOME_", "pve=10.0.0.5")
	lab := clusterVars("JARVIS_CLUSTER_LAB_", "lab1=10.1.0.5")
	for _, tc := range []struct {
		name string
		env  map[string]string
		demo bool
		// want lists the clusters as name:first node:protected VMIDs; or
		// problems lists what the error must say.
		want     []string
		problems []string
	}{
		{name: "unset is one cluster from the unprefixed variables", env: join(secrets, clusterVars("", "pve=10.0.0.5"), map[string]string{"JARVIS_PROTECTED_VMIDS": "103"}),
			want: []string{"pve:pve:[103]"}},
		{name: "one cluster named", env: join(secrets, clusterVars("", "pve=10.0.0.5"), map[string]string{"JARVIS_CLUSTER_NAME": "home"}),
			want: []string{"home:pve:[]"}},
		{name: "two clusters, each with its own settings", env: join(secrets, home, lab, map[string]string{
			"JARVIS_CLUSTERS": "home, lab", "JARVIS_CLUSTER_HOME_PROTECTED_VMIDS": "103", "JARVIS_CLUSTER_LAB_PROTECTED_VMIDS": "200,201",
			// What .env.example sets: the defaults do not count as settings left unprefixed.
			"SSH_USER": "root", "PVE_INSECURE_TLS": "false", "JARVIS_WOL_BROADCAST": "255.255.255.255:9", "JARVIS_CLUSTER_NAME": "pve"}),
			want: []string{"home:pve:[103]", "lab:lab1:[200 201]"}},
		{name: "a name with a dash", env: join(secrets, home, clusterVars("JARVIS_CLUSTER_SITE_B_", "b1=10.2.0.5"), map[string]string{"JARVIS_CLUSTERS": "home,site-b"}),
			want: []string{"home:pve:[]", "site-b:b1:[]"}},
		{name: "one name in JARVIS_CLUSTERS", env: join(secrets, lab, map[string]string{"JARVIS_CLUSTERS": "lab"}),
			want: []string{"lab:lab1:[]"}},
		{name: "the demo needs no cluster settings", env: map[string]string{"JARVIS_CLUSTERS": "home,lab"}, demo: true,
			want: []string{"home::[]", "lab::[]"}},
		// Only a name that is another's with "-…" after it makes the variables overlap.
		{name: "names that start alike but do not overlap", env: map[string]string{"JARVIS_CLUSTERS": "lab,labs,ssh-lab,lab2"}, demo: true,
			want: []string{"lab::[]", "labs::[]", "ssh-lab::[]", "lab2::[]"}},

		{name: "bad names", env: join(secrets, map[string]string{"JARVIS_CLUSTERS": "Home,1lab,a_b," + strings.Repeat("x", 33)}), demo: true,
			problems: []string{`cluster "Home" must be lower-case letters`, `cluster "1lab"`, `cluster "a_b"`, `cluster "` + strings.Repeat("x", 33) + `"`}},
		{name: "a bad single name", env: map[string]string{"JARVIS_CLUSTER_NAME": "My Cluster"}, demo: true,
			problems: []string{`JARVIS_CLUSTER_NAME="My Cluster": a cluster's name is lower-case letters`}},
		// Refused on the names alone, before any variable is set.
		{name: "a name and its -ssh", env: map[string]string{"JARVIS_CLUSTERS": "lab,lab-ssh"}, demo: true,
			problems: []string{`JARVIS_CLUSTERS="lab,lab-ssh": clusters lab and lab-ssh cannot both be listed`,
				"JARVIS_CLUSTER_LAB_SSH_NODES would be both lab's SSH_NODES and lab-ssh's NODES", `rename lab-ssh so that it does not start with "lab-" (e.g. labssh)`}},
		{name: "a name and its -protected, the longer first", env: map[string]string{"JARVIS_CLUSTERS": "x-protected,x"}, demo: true,
			problems: []string{"clusters x-protected and x cannot both be listed", "JARVIS_CLUSTER_X_PROTECTED_NODES would be both x's PROTECTED_NODES and x-protected's NODES",
				`rename x-protected so that it does not start with "x-"`}},
		{name: "overlapping names with no setting in common", env: map[string]string{"JARVIS_CLUSTERS": "site,site-b-c,site-b"}, demo: true,
			problems: []string{"clusters site and site-b-c cannot both be listed", "a variable starting JARVIS_CLUSTER_SITE_B_C_ could be meant for either",
				"clusters site and site-b cannot both be listed", "clusters site-b-c and site-b cannot both be listed", `rename site-b-c so that it does not start with "site-b-"`}},
		{name: "a name listed twice", env: join(secrets, home, map[string]string{"JARVIS_CLUSTERS": "home,home"}),
			problems: []string{"cluster home is listed twice"}},
		{name: "a cluster's settings missing", env: join(secrets, home, map[string]string{"JARVIS_CLUSTERS": "home,lab"}),
			problems: []string{"JARVIS_CLUSTER_LAB_NODES: list the cluster's nodes", "JARVIS_CLUSTER_LAB_PVE_TOKEN_ID=",
				"JARVIS_CLUSTER_LAB_PVE_TOKEN_SECRET (or JARVIS_CLUSTER_LAB_PVE_TOKEN_SECRET_FILE): the API token's secret UUID is missing"}},
		{name: "unprefixed settings beside JARVIS_CLUSTERS", env: join(secrets, home, lab, map[string]string{"JARVIS_CLUSTERS": "home,lab",
			"JARVIS_PROTECTED_VMIDS": "103", "PVE_TOKEN_ID": "jarvis@pve!mcp"}),
			problems: []string{"JARVIS_PROTECTED_VMIDS is set, but JARVIS_CLUSTERS=home,lab reads each cluster's settings from JARVIS_CLUSTER_<NAME>_PROTECTED_VMIDS",
				"PVE_TOKEN_ID is set, but JARVIS_CLUSTERS=home,lab"}},
		{name: "JARVIS_CLUSTER_NAME beside JARVIS_CLUSTERS", env: join(secrets, home, map[string]string{"JARVIS_CLUSTERS": "home", "JARVIS_CLUSTER_NAME": "home"}),
			problems: []string{`JARVIS_CLUSTER_NAME="home" names the one cluster of an installation without JARVIS_CLUSTERS`}},
		{name: "a misspelt setting or cluster", env: join(secrets, home, lab, map[string]string{"JARVIS_CLUSTERS": "home,lab",
			"JARVIS_CLUSTER_HOME_PROTECTED_VMID": "103", "JARVIS_CLUSTER_HOEM_NODES": "pve=10.0.0.5"}),
			problems: []string{"JARVIS_CLUSTER_HOME_PROTECTED_VMID is not a setting of a cluster in JARVIS_CLUSTERS=home,lab",
				"JARVIS_CLUSTER_HOEM_NODES is not a setting"}},
		{name: "prefixed settings without JARVIS_CLUSTERS", env: join(secrets, clusterVars("", "pve=10.0.0.5"), home),
			problems: []string{"JARVIS_CLUSTER_HOME_NODES is set, but JARVIS_CLUSTERS is not"}},
		{name: "each problem named by the cluster's variable", env: join(secrets, home, lab, map[string]string{"JARVIS_CLUSTERS": "home,lab",
			"JARVIS_CLUSTER_LAB_PVE_INSECURE_TLS": "maybe", "JARVIS_CLUSTER_LAB_PROTECTED_VMIDS": "abc", "JARVIS_CLUSTER_LAB_WOL_MACS": "lab1=not-a-mac",
			"JARVIS_CLUSTER_LAB_PVE_TLS_FINGERPRINT": "AB:CD", "JARVIS_CLUSTER_LAB_SSH_KEY_PATH": "/nonexistent/key", "JARVIS_CLUSTER_LAB_NODES": "bad name=1"}),
			problems: []string{`JARVIS_CLUSTER_LAB_PVE_INSECURE_TLS="maybe": use true or false`, `JARVIS_CLUSTER_LAB_PROTECTED_VMIDS: "abc" is not a VMID`,
				`JARVIS_CLUSTER_LAB_WOL_MACS: "lab1": "not-a-mac" is not a MAC address`, `JARVIS_CLUSTER_LAB_PVE_TLS_FINGERPRINT="AB:CD": not a SHA-256`,
				"JARVIS_CLUSTER_LAB_SSH_KNOWN_HOSTS: required when JARVIS_CLUSTER_LAB_SSH_KEY_PATH is set", "JARVIS_CLUSTER_LAB_SSH_KEY_PATH=/nonexistent/key: no such file",
				`JARVIS_CLUSTER_LAB_NODES: node name "bad name"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig(tc.demo)
			if tc.problems != nil {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, want := range tc.problems {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("missing %q in:\n%v", want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cfg.clusters {
				first := ""
				if len(c.nodeList) > 0 {
					first = c.nodeList[0].Name
				}
				vmids := fmt.Sprint(c.vmids)
				got = append(got, c.name+":"+first+":"+vmids)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("clusters %v, want %v", got, tc.want)
			}
		})
	}
}

// A cluster's variable is the unprefixed one with JARVIS_CLUSTER_<NAME>_
// before it and a leading JARVIS_ dropped: the two tags must agree, or the
// documented names would not be the ones read.
func TestClusterTagsFollowTheRule(t *testing.T) {
	typ := reflect.TypeFor[ClusterEnv]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		if got, want := f.Tag.Get("cluster"), strings.TrimPrefix(f.Tag.Get("env"), "JARVIS_"); got != want {
			t.Errorf("%s: cluster tag %q, want %q", f.Name, got, want)
		}
	}
	if got := (&ClusterEnv{prefix: clusterPrefix("site-b")}).varName("JARVIS_PROTECTED_VMIDS"); got != "JARVIS_CLUSTER_SITE_B_PROTECTED_VMIDS" {
		t.Errorf("varName = %s", got)
	}
}

// jarvis doctor checks each cluster on its own, each line naming it: here
// home answers and lab's token secret is wrong.
func TestDoctorChecksEachCluster(t *testing.T) {
	home := startDoctorCluster(t, pvesim.Options{})
	lab := startDoctorCluster(t, pvesim.Options{Site: demoSite(1, "lab")})
	setDoctorEnv(t, home, map[string]string{
		"JARVIS_NODES": "", "PVE_TOKEN_ID": "", "PVE_TOKEN_SECRET": "", "PVE_TLS_FINGERPRINT": "",
		"JARVIS_CLUSTERS":                         "home,lab",
		"JARVIS_CLUSTER_HOME_NODES":               home.allNodes(),
		"JARVIS_CLUSTER_HOME_PVE_TOKEN_ID":        doctorTokenID,
		"JARVIS_CLUSTER_HOME_PVE_TOKEN_SECRET":    doctorSecret,
		"JARVIS_CLUSTER_HOME_PVE_TLS_FINGERPRINT": home.fingerprint,
		"JARVIS_CLUSTER_LAB_NODES":                "lab-pve=" + lab.hostPort,
		"JARVIS_CLUSTER_LAB_PVE_TOKEN_ID":         doctorTokenID,
		"JARVIS_CLUSTER_LAB_PVE_TOKEN_SECRET":     "wrong-secret",
		"JARVIS_CLUSTER_LAB_PVE_TLS_FINGERPRINT":  lab.fingerprint,
	})
	out, err := runDoctorCmd(t)
	if err == nil {
		t.Errorf("doctor passed with lab's secret wrong:\n%s", out)
	}
	wantLine(t, out, "ok", "config", "clusters home, lab (the first is the default)")
	wantLine(t, out, "ok", "cluster home: proxmox api pve (https://"+home.hostPort+")")
	wantLine(t, out, "ok", "cluster home: node names", "JARVIS_CLUSTER_HOME_NODES (home, pve, agent1, agent)")
	wantLine(t, out, "skip", "cluster home: ssh", "JARVIS_CLUSTER_HOME_SSH_KEY_PATH")
	wantLine(t, out, "FAIL", "cluster lab: proxmox api lab-pve", "401")
	wantLine(t, out, "skip", "cluster lab: token privileges")
}
