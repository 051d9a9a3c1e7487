package pvesim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Sim) getVersion(*call) response {
	return dataResponse(map[string]any{"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83", "console": "html5"})
}

func (s *Sim) onlineCount() int {
	n := 0
	for _, nd := range s.nodes {
		if !s.offline[nd.name] {
			n++
		}
	}
	return n
}

func (s *Sim) getClusterStatus(*call) response {
	quorate := s.onlineCount()*2 > len(s.nodes)
	out := []map[string]any{{"type": "cluster", "id": "cluster", "name": s.clusterName(), "nodes": len(s.nodes), "quorate": b01(quorate), "version": 4}}
	for _, n := range s.nodes {
		out = append(out, map[string]any{"type": "node", "id": "node/" + n.name, "name": n.name, "ip": n.ip, "level": "",
			"local": b01(n.name == s.nodeName("home")), "nodeid": n.id, "online": b01(!s.offline[n.name])})
	}
	return dataResponse(out)
}

func (s *Sim) nodeResource(n *node) map[string]any {
	m := map[string]any{"id": "node/" + n.name, "type": "node", "node": n.name, "status": "online", "level": "", "cgroup-mode": 2}
	if s.offline[n.name] {
		m["status"] = "offline"
		return m
	}
	now := s.now()
	cpu, mem := s.nodeUsage(n, now)
	m["cpu"], m["maxcpu"], m["mem"], m["maxmem"] = round4(cpu), n.cores, mem, n.maxmem
	m["disk"], m["maxdisk"], m["uptime"] = n.rootfs*23/100, n.rootfs, int64(now.Sub(n.bootedAt).Seconds())
	return m
}

func (s *Sim) guestResource(g *guest) map[string]any {
	m := map[string]any{"id": fmt.Sprintf("%s/%d", g.kind, g.vmid), "type": g.kind, "vmid": g.vmid, "name": g.name,
		"node": g.node, "status": g.status, "template": b01(g.template)}
	if s.haManaged(g) {
		m["hastate"] = s.haState(g)
	}
	if g.tags != "" {
		m["tags"] = g.tags
	}
	if s.offline[g.node] {
		m["status"] = "unknown"
		return m
	}
	if g.lock != "" {
		m["lock"] = g.lock
	}
	u := g.usage(s.now())
	m["cpu"], m["maxcpu"], m["mem"], m["maxmem"] = round4(u.cpu), g.cores, u.mem, g.maxmem
	m["disk"], m["maxdisk"], m["uptime"] = u.disk, g.maxdisk, u.uptime
	m["netin"], m["netout"], m["diskread"], m["diskwrite"] = u.netin, u.netout, u.dread, u.dwrite
	return m
}

func (s *Sim) storageResource(st *storage, n *node) map[string]any {
	m := map[string]any{"id": "storage/" + n.name + "/" + st.name, "type": "storage", "storage": st.name, "node": n.name,
		"plugintype": st.typ, "content": st.content, "shared": b01(st.shared), "status": "available"}
	if s.offline[n.name] {
		m["status"] = "unknown"
		return m
	}
	m["disk"], m["maxdisk"] = s.storageUsed(st, n.name), st.total
	return m
}

func (s *Sim) getClusterResources(c *call) response {
	typ := c.params["type"]
	var out []map[string]any
	if typ == "" || typ == "node" {
		for _, n := range s.nodes {
			out = append(out, s.nodeResource(n))
		}
	}
	if typ == "" || typ == "vm" {
		for _, id := range s.sortedVMIDs() {
			out = append(out, s.guestResource(s.guests[id]))
		}
	}
	if typ == "" || typ == "storage" {
		for _, n := range s.nodes {
			for _, st := range s.storages {
				out = append(out, s.storageResource(st, n))
			}
		}
	}
	if typ == "" || typ == "sdn" {
		for _, n := range s.nodes {
			status := "ok"
			if s.offline[n.name] {
				status = "unknown"
			}
			out = append(out, map[string]any{"id": "sdn/" + n.name + "/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": n.name, "status": status})
		}
	}
	return dataResponse(out)
}

func (s *Sim) getNodes(*call) response {
	out := []map[string]any{}
	for _, n := range s.nodes {
		m := s.nodeResource(n)
		delete(m, "cgroup-mode")
		if !s.offline[n.name] {
			m["ssl_fingerprint"] = sslFingerprint(n.name)
		}
		out = append(out, m)
	}
	return dataResponse(out)
}

func sslFingerprint(name string) string {
	d := strings.ToUpper(digest("cert", name) + digest("cert2", name))[:64]
	pairs := make([]string, 0, 32)
	for i := 0; i < 64; i += 2 {
		pairs = append(pairs, d[i:i+2])
	}
	return strings.Join(pairs, ":")
}

func (s *Sim) getNodeStatus(c *call) response {
	n := s.node(c.vars["node"])
	now := s.now()
	cpu, mem := s.nodeUsage(n, now)
	load := cpu * float64(n.cores)
	rootUsed := n.rootfs * 23 / 100
	swapTotal := 8 * gib
	swapUsed := int64(n.id) * 37 * mib
	return dataResponse(map[string]any{
		"cpu": round4(cpu), "wait": round4(0.002 + 0.001*wave(now, n.id)), "idle": 0,
		"uptime":     int64(now.Sub(n.bootedAt).Seconds()),
		"loadavg":    []string{fmt.Sprintf("%.2f", load), fmt.Sprintf("%.2f", load*0.93), fmt.Sprintf("%.2f", load*0.88)},
		"memory":     map[string]any{"total": n.maxmem, "used": mem, "free": n.maxmem - mem, "available": n.maxmem - mem*9/10},
		"swap":       map[string]any{"total": swapTotal, "used": swapUsed, "free": swapTotal - swapUsed},
		"rootfs":     map[string]any{"total": n.rootfs, "used": rootUsed, "free": n.rootfs - rootUsed, "avail": n.rootfs - rootUsed - 4*gib},
		"ksm":        map[string]any{"shared": 0},
		"cpuinfo":    map[string]any{"model": n.model, "cores": n.cores, "cpus": n.cores, "sockets": 1, "mhz": "2100.000", "hvm": "1", "user_hz": 100},
		"kversion":   "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z) x86_64",
		"pveversion": "pve-manager/9.1.1/42db4a6cf33dac83",
		"current-kernel": map[string]any{"sysname": "Linux", "release": "6.17.2-1-pve", "machine": "x86_64",
			"version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)"},
		"boot-info": map[string]any{"mode": "efi", "secureboot": 0},
	})
}

func (s *Sim) getNodeStorage(c *call) response {
	nodeName := c.vars["node"]
	out := []map[string]any{}
	for _, st := range s.storages {
		if want := c.params["storage"]; want != "" && want != st.name {
			continue
		}
		if want := c.params["content"]; want != "" && !hasContent(st.content, want) {
			continue
		}
		used := s.storageUsed(st, nodeName)
		out = append(out, map[string]any{"storage": st.name, "type": st.typ, "content": st.content, "active": 1, "enabled": 1,
			"shared": b01(st.shared), "total": st.total, "used": used, "avail": st.total - used,
			"used_fraction": round4(float64(used) / float64(st.total))})
	}
	return dataResponse(out)
}

func hasContent(list, want string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == want {
			return true
		}
	}
	return false
}

func (s *Sim) getStorageContent(c *call) response {
	nodeName, name := c.vars["node"], c.vars["storage"]
	st := s.storage(name)
	if st == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' does not exist", name))
	}
	var items []volume
	for _, v := range s.volumes {
		if v.storage == name && (st.shared || v.node == nodeName) {
			items = append(items, v)
		}
	}
	// Guest disks live where their config says (local-lvm unless cloned or
	// restored elsewhere), named as the config names them.
	for _, id := range s.sortedVMIDs() {
		g := s.guests[id]
		if g.node != nodeName || g.storage != name {
			continue
		}
		content := map[string]string{"qemu": "images", "lxc": "rootdir"}[g.kind]
		items = append(items, volume{volid: fmt.Sprintf("%s:%s", g.storage, diskName(g)), content: content, format: "raw",
			size: g.maxdisk, vmid: g.vmid, ctime: s.created.Unix() - int64(g.vmid)*3600})
	}
	out := []map[string]any{}
	for _, v := range items {
		if want := c.params["content"]; want != "" && v.content != want {
			continue
		}
		if want := c.params["vmid"]; want != "" && strconv.Itoa(v.vmid) != want {
			continue
		}
		m := map[string]any{"volid": v.volid, "content": v.content, "format": v.format, "size": v.size}
		if v.ctime > 0 {
			m["ctime"] = v.ctime
		}
		if v.vmid > 0 {
			m["vmid"] = v.vmid
		}
		if v.notes != "" {
			m["notes"] = v.notes
		}
		if v.subtype != "" {
			m["subtype"] = v.subtype
		}
		out = append(out, m)
	}
	return dataResponse(out)
}

// tasksNewestFirst lists tasks, optionally of one node, newest first.
func (s *Sim) tasksNewestFirst(nodeName string) []*task {
	var out []*task
	for _, t := range s.tasks {
		if nodeName == "" || t.node == nodeName {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start.After(out[j].start) })
	return out
}

func (s *Sim) getClusterTasks(c *call) response {
	out := []map[string]any{}
	all := s.seesAllTasks(c.user, "")
	for _, t := range s.tasksNewestFirst("") {
		if all || t.user == c.user {
			out = append(out, t.listJSON())
		}
	}
	return dataResponse(out)
}

func (s *Sim) getNodeTasks(c *call) response {
	p := c.params
	start, _ := strconv.Atoi(p["start"])
	limit := 50
	if v, ok := p["limit"]; ok {
		limit, _ = strconv.Atoi(v)
	}
	var matched []map[string]any
	all := s.seesAllTasks(c.user, c.vars["node"])
	for _, t := range s.tasksNewestFirst(c.vars["node"]) {
		switch {
		case !all && t.user != c.user:
			continue
		case p["vmid"] != "" && t.id != p["vmid"],
			p["typefilter"] != "" && t.typ != p["typefilter"],
			p["userfilter"] != "" && !strings.Contains(t.user, p["userfilter"]),
			p["errors"] == "1" && (!t.done || t.exit == "OK"),
			p["source"] == "active" && t.done,
			p["source"] == "archive" && !t.done,
			p["source"] == "" && !t.done:
			continue
		}
		matched = append(matched, t.listJSON())
	}
	out := []map[string]any{}
	for i := start; i < len(matched) && len(out) < limit; i++ {
		out = append(out, matched[i])
	}
	return dataResponse(out)
}

var upidShape = regexp.MustCompile(`^UPID:[a-zA-Z0-9\-]+:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$`)

func (s *Sim) taskFor(c *call) (*task, *response) {
	upid := c.vars["upid"]
	if !upidShape.MatchString(upid) {
		r := badRequest(map[string]string{"upid": "unable to parse worker upid '" + upid + "'"})
		return nil, &r
	}
	t := s.findTask(upid)
	if t == nil || t.node != c.vars["node"] {
		r := badRequest(map[string]string{"upid": "no such task"})
		return nil, &r
	}
	return t, nil
}

func (s *Sim) getTaskStatus(c *call) response {
	t, errRes := s.taskFor(c)
	if errRes != nil {
		return *errRes
	}
	return dataResponse(t.statusJSON())
}

func (s *Sim) getTaskLog(c *call) response {
	t, errRes := s.taskFor(c)
	if errRes != nil {
		return *errRes
	}
	start, _ := strconv.Atoi(c.params["start"])
	limit := 50
	if v, ok := c.params["limit"]; ok {
		limit, _ = strconv.Atoi(v)
	}
	lines := t.lines()
	if len(lines) == 0 {
		lines = []string{"no content"}
	}
	out := []map[string]any{}
	for i := start; i < len(lines) && len(out) < limit; i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	res := dataResponse(out)
	// PVE adds the line count beside data.
	res.body = []byte(strings.TrimSuffix(string(res.body), "}") + fmt.Sprintf(`,"total":%d}`, len(lines)))
	return res
}

func (s *Sim) getGuestList(c *call) response {
	kind := strings.Split(c.path, "/")[3]
	out := []map[string]any{}
	for _, id := range s.sortedVMIDs() {
		g := s.guests[id]
		if g.node != c.vars["node"] || g.kind != kind {
			continue
		}
		out = append(out, s.guestStatusJSON(g))
	}
	return dataResponse(out)
}

// guestFor resolves the {node}/{kind}/{vmid} of a path the way PVE does: the
// config file must exist on that node.
func (s *Sim) guestFor(c *call) (*guest, *node, *response) {
	kind := strings.Split(c.path, "/")[3]
	nodeName, vmid := c.vars["node"], c.vmid()
	g := s.guests[vmid]
	if g == nil || g.node != nodeName || g.kind != kind {
		r := errorResponse(http.StatusInternalServerError, fmt.Sprintf("Configuration file '%s' does not exist", confPath(nodeName, kind, vmid)))
		return nil, nil, &r
	}
	return g, s.node(nodeName), nil
}

func (s *Sim) guestStatusJSON(g *guest) map[string]any {
	u := g.usage(s.now())
	m := map[string]any{"vmid": g.vmid, "name": g.name, "status": g.status, "cpu": round4(u.cpu), "cpus": g.cores,
		"mem": u.mem, "maxmem": g.maxmem, "disk": u.disk, "maxdisk": g.maxdisk, "uptime": u.uptime,
		"netin": u.netin, "netout": u.netout, "diskread": u.dread, "diskwrite": u.dwrite}
	if g.tags != "" {
		m["tags"] = g.tags
	}
	if g.template {
		m["template"] = 1
	}
	if g.lock != "" {
		m["lock"] = g.lock
	}
	if g.pid != 0 {
		m["pid"] = g.pid
	}
	if g.kind == "qemu" {
		m["qmpstatus"] = g.status
		if g.status == "running" {
			m["running-machine"], m["running-qemu"] = "pc-q35-10.1+pve0", "10.1.2"
		}
	} else {
		m["type"] = "lxc"
		m["maxswap"], m["swap"] = g.maxmem, 0
	}
	return m
}

func (s *Sim) getGuestStatus(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	m := s.guestStatusJSON(g)
	m["ha"] = map[string]any{"managed": 0}
	if s.haManaged(g) {
		m["ha"] = map[string]any{"managed": 1, "state": s.haState(g)}
	}
	if g.kind == "qemu" {
		m["agent"] = 1
	}
	return dataResponse(m)
}

func (s *Sim) guestConfigJSON(g *guest) map[string]any {
	var m map[string]any
	if g.kind == "qemu" {
		m = map[string]any{
			"name": g.name, "memory": strconv.FormatInt(g.maxmem/mib, 10), "cores": g.cores, "sockets": 1, "cpu": "x86-64-v2-AES",
			"ostype": g.ostype, "scsihw": "virtio-scsi-single", "boot": "order=scsi0;ide2;net0", "ide2": "none,media=cdrom",
			"scsi0": fmt.Sprintf("%s:%s,iothread=1,size=%s", g.storage, diskName(g), diskSize(g.maxdisk)),
			"net0":  fmt.Sprintf("virtio=%s,bridge=vmbr0,firewall=1", g.mac), "agent": "1", "numa": 0, "onboot": b01(g.onboot),
			"smbios1": "uuid=" + uuidOf(g.vmid), "vmgenid": uuidOf(g.vmid + 1), "meta": "creation-qemu=9.2.0,ctime=1735689600",
		}
	} else {
		m = map[string]any{
			"hostname": g.name, "memory": g.maxmem / mib, "swap": g.maxmem / mib, "cores": g.cores, "ostype": g.ostype, "arch": "amd64",
			"rootfs":       fmt.Sprintf("%s:%s,size=%s", g.storage, diskName(g), diskSize(g.maxdisk)),
			"net0":         fmt.Sprintf("name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth", g.mac),
			"unprivileged": 1, "features": "nesting=1", "onboot": b01(g.onboot),
		}
	}
	if g.kind == "qemu" && g.cloudinit {
		m["ide2"] = fmt.Sprintf("%s:vm-%d-cloudinit,media=cdrom", g.storage, g.vmid)
	}
	if g.kind == "qemu" && g.balloon > 0 {
		m["balloon"] = g.balloon / mib
	}
	if g.description != "" {
		m["description"] = g.description
	}
	for k, v := range map[string]string{"ciuser": g.ciuser, "cipassword": g.cipassword, "sshkeys": g.sshkeys, "ipconfig0": g.ipconfig0} {
		if v != "" && g.kind == "qemu" {
			m[k] = v
		}
	}
	if g.cipassword != "" && g.kind == "qemu" {
		m["cipassword"] = "**********" // PVE never sends the password back
	}
	if g.tags != "" {
		m["tags"] = g.tags
	}
	if g.template {
		m["template"] = 1
	}
	if g.lock != "" {
		m["lock"] = g.lock
	}
	return m
}

// diskSize is a disk's size as PVE writes it in a config: whole GiB as "64G",
// anything else in MiB.
func diskSize(bytes int64) string {
	if bytes%gib == 0 {
		return fmt.Sprintf("%dG", bytes/gib)
	}
	return fmt.Sprintf("%dM", bytes/mib)
}

// diskName is the volume name of a guest's disk: a template's is a base image.
func diskName(g *guest) string {
	if g.template {
		return fmt.Sprintf("base-%d-disk-0", g.vmid)
	}
	return fmt.Sprintf("vm-%d-disk-0", g.vmid)
}

func uuidOf(n int) string {
	d := digest("uuid", n)
	return d[0:8] + "-" + d[8:12] + "-" + d[12:16] + "-" + d[16:20] + "-" + d[20:32]
}

func (s *Sim) getGuestConfig(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	m := s.guestConfigJSON(g)
	if name := c.params["snapshot"]; name != "" {
		sn := g.snapshot(name)
		if sn == nil {
			return errorResponse(http.StatusInternalServerError, fmt.Sprintf("snapshot '%s' does not exist", name))
		}
		m["snaptime"], m["description"] = sn.snaptime, sn.description
		if sn.parent != "" {
			m["parent"] = sn.parent
		}
	} else if g.parent != "" {
		m["parent"] = g.parent
	}
	m["digest"] = digest(m)
	return dataResponse(m)
}

func (s *Sim) getSnapshots(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	out := []map[string]any{}
	for _, sn := range g.snapshots {
		m := map[string]any{"name": sn.name, "description": sn.description, "snaptime": sn.snaptime}
		if sn.parent != "" {
			m["parent"] = sn.parent
		}
		if g.kind == "qemu" {
			m["vmstate"] = b01(sn.vmstate)
		}
		out = append(out, m)
	}
	current := map[string]any{"name": "current", "description": "You are here!", "running": b01(g.status == "running"),
		"digest": digest(s.guestConfigJSON(g))}
	if g.parent != "" {
		current["parent"] = g.parent
	}
	return dataResponse(append(out, current))
}

func (s *Sim) getSnapshotIndex(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	if g.snapshot(c.vars["snapname"]) == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("snapshot '%s' does not exist", c.vars["snapname"]))
	}
	return dataResponse([]map[string]any{{"cmd": "rollback"}, {"cmd": "config"}})
}

func taskResponse(t *task) response { return dataResponse(t.upid) }

func (s *Sim) postPower(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	action := c.path[strings.LastIndex(c.path, "/")+1:]
	t, refused := s.powerTask(g, n, action, c.user, c.params)
	if refused != nil {
		return *refused
	}
	return taskResponse(t)
}

func (s *Sim) postSnapshot(c *call) response {
	name := c.params["snapname"]
	if !snapNamePattern.MatchString(name) || name == "current" {
		return badRequest(map[string]string{"snapname": fmt.Sprintf("invalid format - invalid configuration ID '%s'", name)})
	}
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	return taskResponse(s.snapshotTask(g, n, name, c.params["description"], c.params["vmstate"] == "1", c.user))
}

func (s *Sim) postRollback(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	return taskResponse(s.rollbackTask(g, n, c.vars["snapname"], c.params["start"] == "1", c.user))
}

func (s *Sim) deleteSnapshot(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	return taskResponse(s.deleteSnapshotTask(g, n, c.vars["snapname"], c.params["force"] == "1", c.user))
}

func round4(f float64) float64 {
	return float64(int64(f*10000+0.5)) / 10000
}
