package sshsim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newKey(t *testing.T) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testSim struct {
	*Sim
	key gossh.Signer
}

func start(t *testing.T) *testSim {
	t.Helper()
	key := newKey(t)
	s, err := Start(Options{Nodes: DemoFacts(), AuthorizedKey: key.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testSim{s, key}
}

// dial connects to a node, checking its host key against KnownHosts.
func (s *testSim) dial(t *testing.T, node string, key gossh.Signer) (*gossh.Client, error) {
	t.Helper()
	_, _, pinned, _, _, err := gossh.ParseKnownHosts(s.KnownHosts()[bytes.Index(s.KnownHosts(), []byte(knownhosts.Normalize(s.Addr(node)))):])
	if err != nil {
		t.Fatal(err)
	}
	return gossh.Dial("tcp", s.Addr(node), &gossh.ClientConfig{
		User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(key)},
		HostKeyCallback: gossh.FixedHostKey(pinned),
	})
}

// run executes one raw command string and returns stdout, stderr and status.
func (s *testSim) run(t *testing.T, node, command string) (string, string, int) {
	t.Helper()
	c, err := s.dial(t, node, s.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	err = sess.Run(command)
	var exit *gossh.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.ExitStatus()
	}
	t.Fatalf("%s: %v", command, err)
	return "", "", 0
}

func TestCommands(t *testing.T) {
	s := start(t)
	tests := []struct {
		node, command string
		code          int
		stdout        []string // substrings
		stderr        string
	}{
		{"agent1", "timeout -k 5 30 sh -c uptime", 0, []string{"up 7 days", "load average: 0.52, 0.61, 0.57"}, ""},
		{"agent1", "hostname", 0, []string{"agent1\n"}, ""},
		{"pve", "df -h /", 0, []string{"Filesystem", "rpool/ROOT/pve-1"}, ""},
		{"agent", "free -m", 0, []string{"Mem:           32768"}, ""},
		{"pve", "lsblk", 0, []string{"nvme0n1", "nvme1n1"}, ""},
		{"home", "lscpu", 0, []string{"CPU(s):                               6", "Thread(s) per core:                   1", "i5-8500T"}, ""},
		{"home", "uname -r", 0, []string{"-pve\n"}, ""},
		{"home", "uname -a", 0, []string{"Linux home ", "GNU/Linux"}, ""},
		{"agent1", "ps aux | grep 'kvm -id 103'", 0, []string{"-name mgmt"}, ""},
		{"agent1", "top -bn1 | head -n 1", 0, []string{"top - "}, ""},
		{"agent", "sensors", 0, []string{"Package id 0:  +58.0°C"}, ""},
		{"pve", "cat /sys/class/thermal/thermal_zone0/type /sys/class/thermal/thermal_zone0/temp /sys/class/thermal/thermal_zone2/temp", 0, []string{"x86_pkg_temp\n52500\n35200\n"}, ""},
		{"pve", "cat /sys/class/thermal/thermal_zone*/temp", 0, []string{"52500\n38000\n35200\n"}, ""},
		{"pve", "cat /etc/hostname /nope", 1, []string{"pve\n"}, "cat: /nope: No such file or directory"},
		{"home", "cat /etc/os-release | grep -i pretty", 0, []string{"Debian GNU/Linux 13"}, ""},
		{"home", "mount | grep -c zfs", 0, []string{"4\n"}, ""},
		{"agent1", "findmnt /", 0, []string{"/dev/mapper/pve-root"}, ""},
		{"agent", "dmesg | grep -i 'i/o error'", 0, []string{"dev sdb"}, ""},
		{"agent", "dmesg -C", 1, nil, "Operation not permitted"},
		{"agent", "journalctl -u smartd -p err --no-pager", 0, []string{"FAILED SMART self-check"}, ""},
		{"agent", "journalctl -u pveproxy -n 2 --no-pager | wc -l", 0, []string{"2\n"}, ""},
		{"home", "journalctl -p err --since '1 hour ago'", 0, []string{"-- No entries --"}, ""},
		{"home", "journalctl --vacuum-size=1M", 1, nil, "not permitted"},
		{"pve", "systemctl status pveproxy", 0, []string{"Active: active (running)"}, ""},
		{"agent", "systemctl status smartd", 3, []string{"Active: failed"}, ""},
		{"agent1", "systemctl is-active pve-ha-crm", 3, []string{"inactive\n"}, ""},
		{"agent1", "systemctl is-active pveproxy", 0, []string{"active\n"}, ""},
		{"agent1", "systemctl status nosuch", 4, nil, "Unit nosuch.service could not be found."},
		{"agent1", "systemctl is-enabled corosync.service", 0, []string{"enabled"}, ""},
		{"agent", "systemctl show smartd --property=ActiveState,SubState", 0, []string{"ActiveState=failed\nSubState=failed\n"}, ""},
		{"agent", "systemctl list-units --failed", 0, []string{"smartd.service", "1 loaded units listed."}, ""},
		{"pve", "ip -br addr", 0, []string{"vmbr0", "10.0.0.11/24"}, ""},
		{"pve", "ip link show", 0, []string{"tap101i0", "tap102i0", "veth201i0"}, ""},
		{"pve", "ip route show", 0, []string{"default via 10.0.0.1 dev vmbr0"}, ""},
		{"pve", "ss -tlnp", 0, []string{":8006", "pveproxy"}, ""},
		{"pve", "zpool status", 0, []string{"mirror-0", "No known data errors"}, ""},
		{"pve", "zpool list", 0, []string{"rpool", "ONLINE"}, ""},
		{"agent1", "zpool list", 0, []string{"no pools available"}, ""},
		{"pve", "zfs list", 0, []string{"rpool/data/vm-101-disk-0", "rpool/data/subvol-201-disk-0"}, ""},
		{"agent1", "lvs", 0, []string{"vm-103-disk-0"}, ""},
		{"agent1", "vgs", 0, []string{"pve"}, ""},
		{"agent1", "pvs", 0, []string{"/dev/nvme0n1p3"}, ""},
		{"agent", "smartctl -H /dev/sdb", 24, []string{"FAILED!"}, ""},
		{"agent", "smartctl -a /dev/sda", 0, []string{"CT500MX500SSD1", "PASSED"}, ""},
		{"agent", "smartctl -H /dev/sdz", 2, []string{"No such device"}, ""},
		{"home", "pvecm status", 0, []string{"Name:             homelab", "Nodes:            4", "0x00000001          1 10.0.0.10 (local)"}, ""},
		{"home", "pvecm nodes", 0, []string{"home (local)", "agent1"}, ""},
		{"agent1", "qm list", 0, []string{"       103 mgmt                 running    4096"}, ""},
		{"agent1", "qm status 103", 0, []string{"status: running"}, ""},
		{"agent1", "pct list", 0, []string{"202        running", "204        stopped", "dev-ct"}, ""},
		{"home", "pvesh get /version --output-format json", 0, []string{`"version":"9.0.3"`}, ""},
		{"home", "seq 1 5 | sort -r | head -n 2", 0, []string{"5\n4\n"}, ""},
		{"home", "seq 3 | tail -1", 0, []string{"3\n"}, ""},
		{"home", "yes hello | head -n 2", 0, []string{"hello\nhello\n"}, ""},
		{"home", "echo b a b | grep -v x | wc -l", 0, []string{"1\n"}, ""},
		{"home", "cat /proc/loadavg | grep nope", 1, nil, ""},
		{"home", "date", 0, []string{" UTC " + strconv.Itoa(time.Now().UTC().Year())}, ""},
		{"home", "who", 0, []string{"root     pts/0"}, ""},
		{"home", "nosuchtool -x", 127, nil, "bash: nosuchtool: command not found"},
		{"home", "echo $(id)", 2, nil, "unsupported shell syntax"},
		{"home", "uptime > /tmp/x", 2, nil, "unsupported shell syntax"},
		{"home", "true && hostname || echo no", 0, []string{"home\n"}, ""},
		{"home", "timeout -k 5 1 sh -c 'sleep 5'", 124, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.node+"/"+tt.command, func(t *testing.T) {
			out, errOut, code := s.run(t, tt.node, tt.command)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errOut, tt.stderr) || (tt.stderr == "" && errOut != "") {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
		})
	}
}

// TestFactsAgree checks that different commands tell the same story.
func TestFactsAgree(t *testing.T) {
	s := start(t)
	for _, node := range s.Nodes() {
		freeOut, _, _ := s.run(t, node, "free -m")
		meminfo, _, _ := s.run(t, node, "grep MemTotal /proc/meminfo")
		kib, _ := strconv.Atoi(strings.Fields(meminfo)[1])
		if total := strings.Fields(strings.Split(freeOut, "\n")[1])[1]; total != strconv.Itoa(kib/1024) {
			t.Errorf("%s: free says %s MiB, meminfo %d KiB", node, total, kib)
		}
		qm, _, _ := s.run(t, node, "qm list | grep -c running")
		kvm, _, _ := s.run(t, node, "ps aux | grep -c /usr/bin/kvm")
		if qm != kvm {
			t.Errorf("%s: qm list has %q running VMs, ps shows %q kvm processes", node, qm, kvm)
		}
	}
}

func TestRestartFlipsServiceAndIsRecorded(t *testing.T) {
	s := start(t)
	if _, _, code := s.run(t, "agent", "systemctl is-active smartd"); code != 3 {
		t.Fatalf("smartd starts failed; is-active exit %d", code)
	}
	if _, errOut, code := s.run(t, "agent", "systemctl restart smartd"); code != 0 {
		t.Fatalf("restart: exit %d %s", code, errOut)
	}
	if got := s.Service("agent", "smartd"); got != "active" {
		t.Errorf("Service = %q after restart", got)
	}
	out, _, code := s.run(t, "agent", "systemctl is-active smartd")
	if code != 0 || out != "active\n" {
		t.Errorf("is-active after restart: %q exit %d", out, code)
	}
	journal, _, _ := s.run(t, "agent", "journalctl -u smartd -n 1")
	if !strings.Contains(journal, "Started smartd.service") {
		t.Errorf("journal lacks the restart: %q", journal)
	}
	if _, errOut, code := s.run(t, "agent", "systemctl restart nosuch"); code != 5 || !strings.Contains(errOut, "not found") {
		t.Errorf("restart of unknown unit: exit %d %q", code, errOut)
	}
	want := []string{"systemctl is-active smartd", "systemctl restart smartd", "systemctl is-active smartd", "journalctl -u smartd -n 1", "systemctl restart nosuch"}
	if got := s.Ran("agent"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Ran = %q, want %q", got, want)
	}
	if got := s.Ran("home"); len(got) != 0 {
		t.Errorf("other node recorded %q", got)
	}
}

func TestAuthAndHostKeys(t *testing.T) {
	s := start(t)
	if _, err := s.dial(t, "home", newKey(t)); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unauthorised key: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(s.KnownHosts())), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d known_hosts lines, want 4", len(lines))
	}
	seen := map[string]bool{}
	for i, node := range s.Nodes() {
		want := fmt.Sprintf("[127.0.0.1]:%s ssh-ed25519 ", strings.TrimPrefix(s.Addr(node), "127.0.0.1:"))
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %q, want prefix %q", lines[i], want)
		}
		key := strings.Fields(lines[i])[2]
		if seen[key] {
			t.Errorf("node %s shares a host key", node)
		}
		seen[key] = true
	}
}

func TestSessionCloseStopsCommand(t *testing.T) {
	s := start(t)
	c, err := s.dial(t, "pve", s.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("timeout -k 5 60 sh -c 'sleep 60'"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Running("pve") == 1 })
	_ = sess.Close()
	waitFor(t, func() bool { return s.Running("pve") == 0 })
	// The connection stays usable.
	sess2, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := sess2.Output("hostname"); err != nil || string(out) != "pve\n" {
		t.Errorf("second session: %q %v", out, err)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	key := newKey(t).PublicKey()
	for _, opts := range []Options{
		{Nodes: DemoFacts()},
		{AuthorizedKey: key},
		{Nodes: []NodeFacts{{Name: "a"}, {Name: "a"}}, AuthorizedKey: key},
	} {
		if s, err := Start(opts); err == nil {
			s.Close()
			t.Errorf("Start(%+v) accepted", opts)
		}
	}
}

func TestDemoFacts(t *testing.T) {
	var names []string
	var mgmt *Guest
	ids := map[int]bool{}
	for _, n := range DemoFacts() {
		names = append(names, n.Name)
		for i, g := range n.Guests {
			if ids[g.VMID] {
				t.Errorf("VMID %d used twice", g.VMID)
			}
			ids[g.VMID] = true
			if g.VMID == 103 && n.Name == "agent1" {
				mgmt = &n.Guests[i]
			}
		}
	}
	if strings.Join(names, ",") != "home,pve,agent1,agent" {
		t.Errorf("nodes %v", names)
	}
	if mgmt == nil || mgmt.Name != "mgmt" || mgmt.Kind != "qemu" || mgmt.Status != "running" {
		t.Errorf("VMID 103 on agent1: %+v", mgmt)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
