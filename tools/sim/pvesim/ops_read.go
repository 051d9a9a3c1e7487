package pvesim

// The reads behind the weekly operations: RRD history (drawn from the same
// usage model as the live figures, so a graph ends where the status is), the
// QEMU guest agent, container interfaces, HA, storage replication, Ceph (not
// installed), pending package updates and the nodes' certificates.

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

func init() {
	// The permission checks of these routes, as the API schema states them
	// (access_test.go holds every route to the schema).
	for key, check := range opsReadChecks {
		permChecks[key] = check
	}
}

var opsReadChecks = func() map[string]permCheck {
	vmAudit := permCheck{path: "/vms/{vmid}", privs: []string{"VM.Audit"}}
	m := map[string]permCheck{
		"GET /nodes/{node}/rrddata":               {path: "/nodes/{node}", privs: []string{"Sys.Audit"}},
		"GET /nodes/{node}/qemu/{vmid}/rrddata":   vmAudit,
		"GET /nodes/{node}/lxc/{vmid}/rrddata":    vmAudit,
		"GET /nodes/{node}/lxc/{vmid}/interfaces": vmAudit,
		"GET /cluster/ha/status/current":          {path: "/", privs: []string{"Sys.Audit"}},
		"GET /cluster/ha/resources":               {path: "/", privs: []string{"Sys.Audit"}},
		// Both list only the jobs of guests with VM.Audit.
		"GET /cluster/replication":            {},
		"GET /nodes/{node}/replication":       {},
		"GET /cluster/ceph/status":            {path: "/", privs: []string{"Sys.Audit", "Datastore.Audit"}, any: true},
		"GET /nodes/{node}/apt/update":        {path: "/nodes/{node}", privs: []string{"Sys.Modify"}},
		"GET /nodes/{node}/certificates/info": {},
	}
	for _, cmd := range agentCommands {
		m["GET /nodes/{node}/qemu/{vmid}/agent/"+cmd] = permCheck{path: "/vms/{vmid}",
			privs: []string{"VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"}, any: true}
	}
	return m
}()

// agentCommands are the guest agent reads the simulator answers.
var agentCommands = []string{"network-get-interfaces", "get-host-name", "get-osinfo"}

// rrdTimeframes are the time frames of a guest's RRD data; a node's has
// "decade" too.
var rrdTimeframes = []string{"hour", "day", "week", "month", "year"}

func opsReadRoutes() []route {
	get := func(pattern string, params map[string]param, h func(*Sim, *call) response) route {
		return route{pattern: seg(pattern), methods: map[string]endpoint{"GET": {params: params, handler: h}}}
	}
	cf := param{typ: "string", enum: []string{"AVERAGE", "MAX"}}
	r := []route{
		get("nodes/{node}/rrddata", map[string]param{"cf": cf,
			"timeframe": {typ: "string", required: true, enum: append(slices.Clone(rrdTimeframes), "decade")}}, (*Sim).getNodeRRD),
		get("nodes/{node}/lxc/{vmid}/interfaces", nil, (*Sim).getContainerInterfaces),
		get("cluster/ha/status/current", nil, (*Sim).getHAStatus),
		get("cluster/ha/resources", map[string]param{"type": {typ: "string", enum: []string{"ct", "vm"}}}, (*Sim).getHAResources),
		get("cluster/replication", nil, (*Sim).getReplicationJobs),
		get("nodes/{node}/replication", map[string]param{"guest": vmidP}, (*Sim).getNodeReplication),
		get("cluster/ceph/status", nil, (*Sim).getCephStatus),
		get("nodes/{node}/apt/update", nil, (*Sim).getAptUpdates),
		get("nodes/{node}/certificates/info", nil, (*Sim).getCertificates),
	}
	for _, kind := range []string{"qemu", "lxc"} {
		r = append(r, get("nodes/{node}/"+kind+"/{vmid}/rrddata", map[string]param{"cf": cf,
			"timeframe": {typ: "string", required: true, enum: rrdTimeframes}}, (*Sim).getGuestRRD))
	}
	for _, cmd := range agentCommands {
		r = append(r, get("nodes/{node}/qemu/{vmid}/agent/"+cmd, nil, (*Sim).getAgent))
	}
	return r
}

// ---- RRD history ----

// PVE answers 70 rows per time frame, each the consolidation of a step.
var rrdSteps = map[string]time.Duration{
	"hour": time.Minute, "day": 20 * time.Minute, "week": 3 * time.Hour,
	"month": 12 * time.Hour, "year": 7 * 24 * time.Hour, "decade": 10 * 7 * 24 * time.Hour,
}

const (
	rrdRows = 70
	// rrdSamples is how many moments of the usage model make one row:
	// AVERAGE is their mean, MAX the largest.
	rrdSamples = 6
	// rrdHistory is how far back the cluster's RRD files go: rows before
	// that carry only their time, as PVE sends rows it has no data for.
	rrdHistory = 180 * 24 * time.Hour
)

// rrdRowTimes are the end times of the rows of a time frame, oldest first.
func rrdRowTimes(now time.Time, step time.Duration) []int64 {
	sec := int64(step / time.Second)
	end := now.Unix() / sec * sec
	out := make([]int64, rrdRows)
	for i := range out {
		out[i] = end - int64(rrdRows-1-i)*sec
	}
	return out
}

// rrdSeries collects one value per sample moment and consolidates them.
type rrdSeries map[string][]float64

func (r rrdSeries) add(name string, v float64) { r[name] = append(r[name], v) }

func (r rrdSeries) into(row map[string]any, cf string) {
	for name, vals := range r {
		v := vals[0]
		for _, x := range vals[1:] {
			if cf == "MAX" {
				v = math.Max(v, x)
			} else {
				v += x
			}
		}
		if cf != "MAX" {
			v /= float64(len(vals))
		}
		if name == "cpu" || name == "iowait" {
			row[name] = round4(v)
		} else {
			row[name] = math.Round(v*100) / 100
		}
	}
}

// rrdRow builds the row ending at t: sample is called for each moment of
// its step, unless the row is older than the history.
func (s *Sim) rrdRow(t int64, step time.Duration, cf string, sample func(at time.Time, r rrdSeries)) map[string]any {
	row := map[string]any{"time": t}
	if t < s.created.Add(-rrdHistory).Unix() {
		return row
	}
	series := rrdSeries{}
	for j := 1; j <= rrdSamples; j++ {
		sample(time.Unix(t, 0).Add(-step+time.Duration(j)*step/rrdSamples), series)
	}
	series.into(row, cf)
	return row
}

// runningAt tells whether a guest ran at t: it runs now and had started by then.
func (g *guest) runningAt(t time.Time) bool {
	return g.status == "running" && !t.Before(g.startedAt)
}

// guestRates are a running guest's steady traffic, bytes per second: the
// rates at which its counters (guest.usage) grow.
func guestRates(g *guest) (netin, netout, dread, dwrite float64) {
	return float64(2000 + g.vmid*3), float64(900 + g.vmid*2), float64(4096 + g.vmid), float64(8192 + g.vmid)
}

func (s *Sim) getGuestRRD(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	step := rrdSteps[c.params["timeframe"]]
	out := make([]map[string]any, 0, rrdRows)
	for _, t := range rrdRowTimes(s.now(), step) {
		out = append(out, s.rrdRow(t, step, c.params["cf"], func(at time.Time, r rrdSeries) {
			r.add("maxcpu", float64(g.cores))
			r.add("maxmem", float64(g.maxmem))
			r.add("maxdisk", float64(g.maxdisk))
			if !g.runningAt(at) {
				for _, name := range []string{"cpu", "mem", "disk", "netin", "netout", "diskread", "diskwrite"} {
					r.add(name, 0)
				}
				return
			}
			u := g.usage(at)
			netin, netout, dread, dwrite := guestRates(g)
			r.add("cpu", u.cpu)
			r.add("mem", float64(u.mem))
			r.add("disk", float64(u.disk))
			r.add("netin", netin)
			r.add("netout", netout)
			r.add("diskread", dread)
			r.add("diskwrite", dwrite)
		}))
	}
	return dataResponse(out)
}

// nodeUsageAt is nodeUsage at a past moment: only the guests that ran then
// count. At the present it is nodeUsage.
func (s *Sim) nodeUsageAt(n *node, t time.Time) (cpu float64, mem int64, netin, netout float64) {
	cpu = n.cpuBase * (1 + 0.2*wave(t, n.id*31))
	mem = 3*gib + int64(n.id)*211*mib
	netin, netout = 1500, 700 // the host's own traffic
	for _, g := range s.guests {
		if g.node != n.name || !g.runningAt(t) {
			continue
		}
		u := g.usage(t)
		cpu += u.cpu * float64(g.cores) / float64(n.cores)
		mem += u.mem
		in, out, _, _ := guestRates(g)
		netin, netout = netin+in, netout+out
	}
	return math.Min(cpu, 1), min(mem, n.maxmem), netin, netout
}

func (s *Sim) getNodeRRD(c *call) response {
	n := s.node(c.vars["node"])
	step := rrdSteps[c.params["timeframe"]]
	out := make([]map[string]any, 0, rrdRows)
	for _, t := range rrdRowTimes(s.now(), step) {
		out = append(out, s.rrdRow(t, step, c.params["cf"], func(at time.Time, r rrdSeries) {
			cpu, mem, netin, netout := s.nodeUsageAt(n, at)
			r.add("cpu", cpu)
			r.add("maxcpu", float64(n.cores))
			r.add("iowait", 0.002+0.001*wave(at, n.id))
			r.add("loadavg", cpu*float64(n.cores))
			r.add("memtotal", float64(n.maxmem))
			r.add("memused", float64(mem))
			r.add("swaptotal", float64(8*gib))
			r.add("swapused", float64(int64(n.id)*37*mib))
			r.add("roottotal", float64(n.rootfs))
			r.add("rootused", float64(n.rootfs*23/100))
			r.add("netin", netin)
			r.add("netout", netout)
		}))
	}
	return dataResponse(out)
}

// ---- the QEMU guest agent and container interfaces ----

// noAgent are VMs (demo VMIDs) whose guest agent never answers, though it is
// enabled in their options: the OPNsense firewall runs FreeBSD without
// qemu-guest-agent.
var noAgent = map[int]bool{100: true}

// lanIPv4 is a guest's address on the LAN.
func lanIPv4(vmid int) string {
	host := vmid % 250
	if host < 2 {
		host += 250
	}
	return fmt.Sprintf("10.0.1.%d", host)
}

// linkLocal is the EUI-64 IPv6 link-local address of a MAC address.
func linkLocal(mac string) string {
	var b [6]byte
	_, _ = fmt.Sscanf(mac, "%02X:%02X:%02X:%02X:%02X:%02X", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5])
	return fmt.Sprintf("fe80::%02x%02x:%02xff:fe%02x:%02x%02x", b[0]^2, b[1], b[2], b[3], b[4], b[5])
}

func agentIPEntry(typ, addr string, prefix int) map[string]any {
	return map[string]any{"ip-address-type": typ, "ip-address": addr, "prefix": prefix}
}

func (s *Sim) getAgent(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	// PVE's order: the agent enabled, the VM running, the agent answering.
	if g.status != "running" {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("VM %d is not running", g.vmid))
	}
	if noAgent[g.vmid-s.opts.Site.VMIDOffset] {
		return errorResponse(http.StatusInternalServerError, "QEMU guest agent is not running")
	}
	var result any
	switch c.path[strings.LastIndex(c.path, "/")+1:] {
	case "network-get-interfaces":
		u := g.usage(s.now())
		result = []map[string]any{
			{"name": "lo", "hardware-address": "00:00:00:00:00:00",
				"ip-addresses": []map[string]any{agentIPEntry("ipv4", "127.0.0.1", 8), agentIPEntry("ipv6", "::1", 128)},
				"statistics":   map[string]any{"rx-bytes": 48213, "tx-bytes": 48213, "rx-packets": 512, "tx-packets": 512, "rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0}},
			{"name": "ens18", "hardware-address": strings.ToLower(g.mac),
				"ip-addresses": []map[string]any{agentIPEntry("ipv4", lanIPv4(g.vmid), 24), agentIPEntry("ipv6", linkLocal(g.mac), 64)},
				"statistics": map[string]any{"rx-bytes": u.netin, "tx-bytes": u.netout, "rx-packets": u.netin / 900, "tx-packets": u.netout / 700,
					"rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0}},
		}
	case "get-host-name":
		result = map[string]any{"host-name": g.name}
	case "get-osinfo":
		result = map[string]any{"id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 13 (trixie)",
			"version": "13 (trixie)", "version-id": "13", "kernel-release": "6.12.57+deb13-amd64",
			"kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.12.57-1 (2025-11-05)", "machine": "x86_64"}
	}
	return dataResponse(map[string]any{"result": result})
}

func (s *Sim) getContainerInterfaces(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	if g.status != "running" {
		// PVE finds no process to read the interfaces from and answers nothing.
		return dataResponse(nil)
	}
	iface := func(name, mac, v4 string, p4 int, v6 string, p6 int) map[string]any {
		return map[string]any{"name": name, "hwaddr": mac, "hardware-address": mac,
			"inet": fmt.Sprintf("%s/%d", v4, p4), "inet6": fmt.Sprintf("%s/%d", v6, p6),
			"ip-addresses": []map[string]any{agentIPEntry("inet", v4, p4), agentIPEntry("inet6", v6, p6)}}
	}
	mac := strings.ToLower(g.mac)
	return dataResponse([]map[string]any{
		iface("lo", "00:00:00:00:00:00", "127.0.0.1", 8, "::1", 128),
		iface("eth0", mac, lanIPv4(g.vmid), 24, linkLocal(g.mac), 64),
	})
}

// ---- HA ----

// haVMIDs are the guests under HA (demo VMIDs): the two production VMs on node pve.
var haVMIDs = []int{101, 102}

func (s *Sim) haGuests() []*guest {
	var out []*guest
	for _, id := range haVMIDs {
		if g := s.guests[s.vmid(id)]; g != nil {
			out = append(out, g)
		}
	}
	return out
}

func haSID(g *guest) string {
	if g.kind == "lxc" {
		return fmt.Sprintf("ct:%d", g.vmid)
	}
	return fmt.Sprintf("vm:%d", g.vmid)
}

// haState is what HA makes of a guest: a stop through the API asks HA to
// keep it stopped; a guest whose node is gone is being fenced.
func (s *Sim) haState(g *guest) string {
	switch {
	case s.offline[g.node]:
		return "fence"
	case g.status == "running":
		return "started"
	}
	return "stopped"
}

func (s *Sim) getHAResources(c *call) response {
	out := []map[string]any{}
	for _, g := range s.haGuests() {
		typ := strings.SplitN(haSID(g), ":", 2)[0]
		if want := c.params["type"]; want != "" && want != typ {
			continue
		}
		requested := "started"
		if g.status != "running" {
			requested = "stopped"
		}
		m := map[string]any{"sid": haSID(g), "type": typ, "state": requested, "max_restart": 1, "max_relocate": 1, "failback": 1}
		m["digest"] = digest(m)
		out = append(out, m)
	}
	return dataResponse(out)
}

// haTime is how PVE's HA manager writes a time in its status lines.
func haTime(t time.Time) string { return t.UTC().Format("Mon Jan _2 15:04:05 2006") }

func (s *Sim) getHAStatus(*call) response {
	now := s.now()
	quorate := s.onlineCount()*2 > len(s.nodes)
	quorum := map[string]any{"id": "quorum", "type": "quorum", "node": s.nodeName("home"), "status": "OK", "quorate": b01(quorate)}
	if !quorate {
		quorum["status"] = fmt.Sprintf("No quorum on node '%s'!", s.nodeName("home"))
	}
	out := []map[string]any{quorum}
	guests := s.haGuests()
	if len(guests) == 0 {
		// Without resources the manager has never been active.
		return dataResponse(out)
	}
	master := s.nodeName("pve")
	if s.offline[master] {
		master = s.nodeName("home")
	}
	stamp := now.Add(-4 * time.Second)
	out = append(out, map[string]any{"id": "master", "type": "master", "node": master,
		"status": fmt.Sprintf("%s (active, %s)", master, haTime(stamp)), "timestamp": stamp.Unix()})
	for _, n := range s.nodes {
		mode, at := "idle", stamp
		for _, g := range guests {
			if g.node == n.name {
				mode = "active"
			}
		}
		if s.offline[n.name] {
			mode, at = "old timestamp - dead?", now.Add(-3*time.Minute)
		}
		out = append(out, map[string]any{"id": "lrm:" + n.name, "type": "lrm", "node": n.name,
			"status": fmt.Sprintf("%s (%s, %s)", n.name, mode, haTime(at)), "timestamp": at.Unix()})
	}
	for _, g := range guests {
		st := s.haState(g)
		requested := "started"
		if g.status != "running" {
			requested = "stopped"
		}
		out = append(out, map[string]any{"id": "service:" + haSID(g), "type": "service", "sid": haSID(g), "node": g.node,
			"state": st, "status": st, "crm_state": st, "request_state": requested, "max_restart": 1, "max_relocate": 1, "failback": 1})
	}
	return dataResponse(out)
}

// ---- storage replication ----

// The one replication job (demo VMID and node): db01 (102) to node home every 15 minutes. It
// fails as it would on a real cluster: replication needs ZFS, and the disk
// is on LVM-thin.
const (
	replicaVMID   = 102
	replicaTarget = "home"
	replicaSpan   = 15 * time.Minute
)

// replicaVisible is PVE's filter: jobs of guests the token may audit.
func (s *Sim) replicaVisible(c *call) bool {
	_, ok := privilegesAt(s.acls(c.user), fmt.Sprintf("/vms/%d", s.vmid(replicaVMID)))["VM.Audit"]
	return ok
}

func (s *Sim) replicaJob(g *guest) map[string]any {
	return map[string]any{"id": fmt.Sprintf("%d-0", g.vmid), "type": "local", "guest": g.vmid, "jobnum": 0,
		"target": s.nodeName(replicaTarget), "schedule": "*/15", "source": g.node}
}

func (s *Sim) getReplicationJobs(c *call) response {
	out := []map[string]any{}
	if g := s.guests[s.vmid(replicaVMID)]; g != nil && s.replicaVisible(c) {
		out = append(out, s.replicaJob(g))
	}
	return dataResponse(out)
}

func (s *Sim) getNodeReplication(c *call) response {
	out := []map[string]any{}
	g := s.guests[s.vmid(replicaVMID)]
	if g == nil || g.node != c.vars["node"] || !s.replicaVisible(c) ||
		(c.params["guest"] != "" && c.params["guest"] != fmt.Sprint(g.vmid)) {
		return dataResponse(out)
	}
	span := int64(replicaSpan / time.Second)
	lastTry := s.now().Unix() / span * span
	m := s.replicaJob(g)
	m["vmtype"] = g.kind
	m["last_sync"] = 0 // never completed
	m["last_try"] = lastTry
	m["next_sync"] = lastTry + span
	m["duration"] = 0.412
	m["fail_count"] = 3
	m["error"] = fmt.Sprintf("missing replicate feature on volume '%s:%s'", g.storage, diskName(g))
	return dataResponse(append(out, m))
}

// ---- Ceph ----

func (s *Sim) getCephStatus(*call) response {
	return errorResponse(http.StatusInternalServerError, "binary not installed: /usr/bin/ceph-mon")
}

// ---- package updates ----

// aptUpdate is one pending update as PVE lists it.
func aptUpdate(pkg, title, origin, section, oldVersion, version string) map[string]any {
	return map[string]any{"Package": pkg, "Title": title, "Description": title + ".", "Origin": origin,
		"Priority": "optional", "Section": section, "Arch": "amd64", "OldVersion": oldVersion, "Version": version}
}

// aptPending are the updates of the last `apt update` on two of the nodes;
// the others are up to date. The libssl and libxml2 updates come from
// Debian's security archive, which PVE reports as origin Debian.
var aptPending = map[string][]map[string]any{
	"home": {
		aptUpdate("libssl3t64", "Secure Sockets Layer toolkit - shared libraries", "Debian", "libs", "3.5.1-1", "3.5.1-1+deb13u1"),
		aptUpdate("openssl", "Secure Sockets Layer toolkit - cryptographic utility", "Debian", "utils", "3.5.1-1", "3.5.1-1+deb13u1"),
		aptUpdate("proxmox-kernel-6.17", "Latest Proxmox Kernel Image", "Proxmox", "admin", "6.17.2-1", "6.17.2-2"),
		aptUpdate("pve-manager", "Proxmox Virtual Environment Management Tools", "Proxmox", "admin", "9.1.1", "9.1.2"),
		aptUpdate("tzdata", "time zone and daylight-saving time data", "Debian", "localization", "2025b-4", "2025b-4+deb13u1"),
	},
	"agent1": {
		aptUpdate("libxml2-16", "GNOME XML library", "Debian", "libs", "2.14.5+dfsg-0.1", "2.14.5+dfsg-0.1+deb13u1"),
		aptUpdate("qemu-server", "Qemu Server Tools", "Proxmox", "admin", "9.0.29", "9.0.30"),
	},
}

func (s *Sim) getAptUpdates(c *call) response {
	return dataResponse(append([]map[string]any{}, aptPending[c.vars["node"]]...))
}

// ---- certificates ----

// The cluster CA and each node's pve-ssl.pem, issued for two years when the
// node joined; agent's was issued long ago and runs out 17 days after the
// simulator starts.
const (
	caSubject       = "/CN=Proxmox Virtual Environment/OU=4c2b1f0e-9a7d-4e55-8c31-0f6d2a9b7e41/O=PVE Cluster Manager CA"
	certLife        = 2 * 365 * 24 * time.Hour
	agentCertLeft   = 17 * 24 * time.Hour
	caCertLife      = 10 * 365 * 24 * time.Hour
	caCertIssuedAgo = 400 * 24 * time.Hour
)

func caFingerprint() string {
	d := strings.ToUpper(digest("ca", 1) + digest("ca", 2))[:64]
	pairs := make([]string, 0, 32)
	for i := 0; i < 64; i += 2 {
		pairs = append(pairs, d[i:i+2])
	}
	return strings.Join(pairs, ":")
}

func (s *Sim) getCertificates(c *call) response {
	n := s.node(c.vars["node"])
	caFrom := s.created.Add(-caCertIssuedAgo)
	nodeFrom := s.created.Add(-time.Duration(40+10*n.id) * 24 * time.Hour)
	if n.name == "agent" {
		nodeFrom = s.created.Add(agentCertLeft - certLife)
	}
	return dataResponse([]map[string]any{
		{"filename": "pve-root-ca.pem", "subject": caSubject, "issuer": caSubject, "fingerprint": caFingerprint(),
			"notbefore": caFrom.Unix(), "notafter": caFrom.Add(caCertLife).Unix(), "public-key-type": "rsaEncryption", "public-key-bits": 4096},
		{"filename": "pve-ssl.pem", "subject": "/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=" + n.name + ".lan",
			"issuer": caSubject, "fingerprint": sslFingerprint(n.name),
			"notbefore": nodeFrom.Unix(), "notafter": nodeFrom.Add(certLife).Unix(), "public-key-type": "rsaEncryption", "public-key-bits": 2048,
			"san": []string{"127.0.0.1", "0000:0000:0000:0000:0000:0000:0000:0001", "localhost", n.name, n.name + ".lan", n.ip}},
	})
}

// SetGuestCloudInit gives a VM the cloud-init settings a clone of the
// cloud-init template gets: user, password, SSH public keys (URL-encoded, as
// PVE keeps them) and ipconfig0 (tests).
func (s *Sim) SetGuestCloudInit(vmid int, user, password, sshkeys, ipconfig0 string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guests[vmid]
	if !ok || g.kind != "qemu" {
		return fmt.Errorf("pvesim: no VM %d", vmid)
	}
	g.ciuser, g.cipassword, g.sshkeys, g.ipconfig0 = user, password, sshkeys, ipconfig0
	return nil
}
