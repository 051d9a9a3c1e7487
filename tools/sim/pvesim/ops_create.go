package pvesim

// What creating things takes: a free VMID, clones, backups (vzdump),
// restores, downloads into a storage, and writing a guest's config (tags,
// notes, cloud-init, cores, memory…), with PVE's checks and messages.

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

func opsCreateRoutes() []route {
	r := []route{
		{pattern: seg("cluster/nextid"), methods: map[string]endpoint{"GET": {
			params: map[string]param{"vmid": vmidP}, handler: (*Sim).getNextID}}},
		{pattern: seg("nodes/{node}/vzdump"), methods: map[string]endpoint{"POST": {
			params: vzdumpParams, privs: "VM.Backup", handler: (*Sim).postVzdump}}},
		{pattern: seg("nodes/{node}/storage/{storage}/download-url"), methods: map[string]endpoint{"POST": {
			params: downloadParams, privs: "Datastore.AllocateTemplate", handler: (*Sim).postDownloadURL}}},
	}
	for _, kind := range []string{"qemu", "lxc"} {
		config := map[string]endpoint{"PUT": {params: configParams(kind, false), privs: "VM.Config.Options", handler: (*Sim).putGuestConfig}}
		if kind == "qemu" {
			// PVE has the asynchronous POST for VMs only.
			config["POST"] = endpoint{params: configParams(kind, true), privs: "VM.Config.Options", handler: (*Sim).postGuestConfig}
		}
		r = append(r,
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/clone"), methods: map[string]endpoint{"POST": {
				params: cloneParams(kind), privs: "VM.Clone", handler: (*Sim).postClone}}},
			// The same paths as the guest list and the config read: merged
			// into their routes at init.
			route{pattern: seg("nodes/{node}/" + kind), methods: map[string]endpoint{"POST": {
				params: restoreParams(kind), privs: "VM.Allocate", handler: (*Sim).postCreateGuest}}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/config"), methods: config},
		)
	}
	return r
}

// opsCreatePermChecks are the permission checks of these routes, as the
// schema states them. Where the schema's check is an "and" (clone,
// download-url), the first part is checked here, up front, and the handler
// checks the rest: it needs the request's parameters (clone's newid).
func opsCreatePermChecks() map[string]permCheck {
	m := map[string]permCheck{
		"GET /cluster/nextid":                               {},
		"POST /nodes/{node}/vzdump":                         {},
		"POST /nodes/{node}/storage/{storage}/download-url": {path: "/storage/{storage}", privs: []string{"Datastore.AllocateTemplate"}},
		"POST /nodes/{node}/qemu":                           {},
		"POST /nodes/{node}/lxc":                            {},
	}
	anyConfig := map[string][]string{
		"qemu": {"VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"},
		"lxc":  {"VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options"},
	}
	for _, kind := range []string{"qemu", "lxc"} {
		g := "/nodes/{node}/" + kind + "/{vmid}"
		m["POST "+g+"/clone"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Clone"}}
		m["PUT "+g+"/config"] = permCheck{path: "/vms/{vmid}", privs: anyConfig[kind], any: true}
		if kind == "qemu" {
			m["POST "+g+"/config"] = permCheck{path: "/vms/{vmid}", privs: anyConfig[kind], any: true}
		}
	}
	return m
}

func init() {
	routes = mergeRoutes(routes)
	for k, v := range opsCreatePermChecks() {
		permChecks[k] = v
	}
}

// mergeRoutes folds routes with the same pattern into the first of them, so
// a file can add a method to a path another file serves (POST beside GET on
// /nodes/{node}/qemu).
func mergeRoutes(in []route) []route {
	var out []route
	index := map[string]int{}
	for _, rt := range in {
		key := strings.Join(rt.pattern, "/")
		i, seen := index[key]
		if !seen {
			index[key] = len(out)
			methods := map[string]endpoint{}
			for m, ep := range rt.methods {
				methods[m] = ep
			}
			out = append(out, route{pattern: rt.pattern, methods: methods})
			continue
		}
		for m, ep := range rt.methods {
			if _, dup := out[i].methods[m]; dup {
				panic(fmt.Sprintf("pvesim: %s /%s is served twice", m, key))
			}
			out[i].methods[m] = ep
		}
	}
	return out
}

// held reports whether tokenID holds priv on path (PVE's $rpcenv->check).
func (s *Sim) held(tokenID, path, priv string) bool {
	_, ok := privilegesAt(s.acls(tokenID), path)[priv]
	return ok
}

// permDenied is PVE's 403 for a failed check of priv on path.
func permDenied(path string, privs ...string) response {
	return errorResponse(http.StatusForbidden, fmt.Sprintf("Permission check failed (%s, %s)", path, strings.Join(privs, "|")))
}

// ---- state the guest model does not hold ----

// createState is what this file's endpoints remember per simulator: the guest
// each backup was made of, so that a restore brings it back.
type createState struct {
	backups map[string]backupOf // volid → the guest as it was backed up
}

// backupOf is a guest as vzdump saved it.
type backupOf struct {
	kind, name, tags, description, ostype, storage string
	cores                                          int
	maxmem, maxdisk, balloon                       int64
	onboot, cloudinit                              bool
	ciuser, cipassword, sshkeys, ipconfig0         string
	memFrac, cpuBase                               float64
}

func backupOfGuest(g *guest) backupOf {
	return backupOf{kind: g.kind, name: g.name, tags: g.tags, description: g.description, ostype: g.ostype, storage: g.storage,
		cores: g.cores, maxmem: g.maxmem, maxdisk: g.maxdisk, balloon: g.balloon, onboot: g.onboot,
		ciuser: g.ciuser, cipassword: g.cipassword, sshkeys: g.sshkeys, ipconfig0: g.ipconfig0, cloudinit: g.cloudinit,
		memFrac: g.memFrac, cpuBase: g.cpuBase}
}

// createStates holds each simulator's createState, keyed weakly so that a
// simulator nobody uses any more is collected with its state.
var createStates = struct {
	sync.Mutex
	m map[weak.Pointer[Sim]]*createState
}{m: map[weak.Pointer[Sim]]*createState{}}

func (s *Sim) createState() *createState {
	key := weak.Make(s)
	createStates.Lock()
	defer createStates.Unlock()
	st := createStates.m[key]
	if st == nil {
		st = &createState{backups: map[string]backupOf{}}
		createStates.m[key] = st
		runtime.AddCleanup(s, func(k weak.Pointer[Sim]) {
			createStates.Lock()
			delete(createStates.m, k)
			createStates.Unlock()
		}, key)
	}
	return st
}

// ---- tasks that show progress ----

// scale is a task's duration: TaskDuration times factor.
func (s *Sim) scale(factor float64) time.Duration {
	return time.Duration(float64(s.opts.TaskDuration) * factor)
}

// startLongTask is startTask for a worker that runs d and prints lines while it
// runs, evenly spread over d (on the wall clock, as a real worker prints
// them); those not printed when it ends are printed then, before finish's own.
func (s *Sim) startLongTask(n *node, typ, id, user string, d time.Duration, startLog, lines []string, finish func() (string, []string)) *task {
	printed := 0
	t := s.startTask(n, typ, id, user, startLog, func() (string, []string) {
		rest := lines[printed:]
		printed = len(lines)
		exit, log := finish()
		if exit != "OK" {
			return exit, log
		}
		return exit, append(slices.Clone(rest), log...)
	})
	t.end = t.start.Add(d)
	for i := range lines {
		time.AfterFunc(d*time.Duration(i+1)/time.Duration(len(lines)+1), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for ; !t.done && printed <= i; printed++ {
				t.startLog = append(t.startLog, lines[printed])
			}
		})
	}
	return t
}

// ---- GET /cluster/nextid ----

func (s *Sim) getNextID(c *call) response {
	if v := c.params["vmid"]; v != "" {
		id, _ := strconv.Atoi(v)
		if _, taken := s.guests[id]; taken {
			return badRequest(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", id)})
		}
		return dataResponse(id)
	}
	for id := 100; ; id++ {
		if _, taken := s.guests[id]; !taken {
			return dataResponse(id)
		}
	}
}

// ---- test helpers ----

// GuestSettings is what the config writes of this file change, for tests.
type GuestSettings struct {
	Tags, Description          string
	CIUser, SSHKeys, IPConfig0 string // SSHKeys as stored: URL-encoded
	Storage                    string
	Cores                      int
	MemoryBytes, BalloonBytes  int64
	DiskBytes                  int64
	OnBoot                     bool
}

// Settings reads a guest's settings.
func (s *Sim) Settings(vmid int) (GuestSettings, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	g, ok := s.guests[vmid]
	if !ok {
		return GuestSettings{}, false
	}
	return GuestSettings{Tags: g.tags, Description: g.description, CIUser: g.ciuser, SSHKeys: g.sshkeys, IPConfig0: g.ipconfig0,
		Storage: g.storage, Cores: g.cores, MemoryBytes: g.maxmem, BalloonBytes: g.balloon, DiskBytes: g.maxdisk, OnBoot: g.onboot}, true
}

// FillStorage adds bytes to what a storage holds besides its volumes (on
// every node that has it), so that tests can run it out of space.
func (s *Sim) FillStorage(name string, bytes int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.storage(name)
	if st == nil {
		return fmt.Errorf("pvesim: no storage %s", name)
	}
	st.baseUse += bytes
	return nil
}
