package tools

// get_cluster_health: HA, storage replication, Ceph, pending updates and
// certificates in one answer. Each section is read on its own; one that cannot
// be read (a node down, a privilege missing) becomes a sentence in problems,
// never a failure of the whole answer. A section that is not set up (no HA
// resources, no replication job, no Ceph) is left out.

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

type HAResourceOut struct {
	SID    string `json:"sid" jsonschema:"vm:101, ct:200, …"`
	State  string `json:"state" jsonschema:"the state HA is asked to keep: started, stopped, …"`
	Node   string `json:"node,omitempty"`
	Status string `json:"status,omitempty" jsonschema:"what the HA manager reports: started, stopped, fence, error, …"`
}

type HAHealth struct {
	Enabled       bool            `json:"enabled" jsonschema:"false while HA is disarmed"`
	ManagerStatus string          `json:"manager_status,omitempty" jsonschema:"the HA manager's node and state"`
	Quorate       bool            `json:"quorate"`
	Resources     []HAResourceOut `json:"resources"`
}

type ReplicationOut struct {
	ID        string  `json:"id"`
	Guest     int64   `json:"guest"`
	Target    string  `json:"target"`
	LastSync  string  `json:"last_sync,omitempty" jsonschema:"RFC 3339; absent when it never completed"`
	Duration  float64 `json:"duration" jsonschema:"seconds the last run took"`
	FailCount int64   `json:"fail_count" jsonschema:"failed runs in a row"`
	Error     string  `json:"error,omitempty"`
}

type CephHealth struct {
	Health   string   `json:"health" jsonschema:"HEALTH_OK, HEALTH_WARN or HEALTH_ERR"`
	Checks   []string `json:"checks,omitempty" jsonschema:"each warning or error, as Ceph words it"`
	OSDs     int64    `json:"osds"`
	OSDsUp   int64    `json:"osds_up"`
	OSDsIn   int64    `json:"osds_in"`
	Monitors int64    `json:"monitors"`
	Usage    Usage    `json:"usage"`
}

type NodeUpdates struct {
	Node     string   `json:"node"`
	Count    int      `json:"count"`
	Security *int     `json:"security,omitempty" jsonschema:"updates from an origin that names itself a security archive; absent when none does (Debian's says Debian)"`
	Packages []string `json:"packages" jsonschema:"the first 10 package names"`
}

type CertificateOut struct {
	Node        string `json:"node"`
	Filename    string `json:"filename"`
	Subject     string `json:"subject"`
	Issuer      string `json:"issuer"`
	NotAfter    string `json:"not_after" jsonschema:"RFC 3339, UTC"`
	DaysLeft    int64  `json:"days_left" jsonschema:"negative once expired"`
	ExpiresSoon bool   `json:"expires_soon" jsonschema:"under 30 days left"`
}

type ClusterHealth struct {
	HA           *HAHealth        `json:"ha,omitempty" jsonschema:"absent when no HA resource is configured"`
	Replication  []ReplicationOut `json:"replication,omitempty" jsonschema:"absent when no replication job is configured"`
	Ceph         *CephHealth      `json:"ceph,omitempty" jsonschema:"absent when Ceph is not installed"`
	Updates      []NodeUpdates    `json:"updates" jsonschema:"pending package updates of each node that could be read"`
	Certificates []CertificateOut `json:"certificates"`
	Problems     []string         `json:"problems" jsonschema:"what needs attention, and what could not be read"`
}

const (
	certWarnDays      = 30
	maxUpdatePackages = 10
)

func getClusterHealth() *Tool {
	return define[NoInput, ClusterHealth](spec{
		name: "get_cluster_health", title: "Cluster health", tier: safety.Green,
		description: "HA state, storage replication, Ceph health, pending package updates and certificate expiry of every node in one answer, with the problems found in sentences.",
	}, func(ctx context.Context, env *Env, _ NoInput) (*Call, error) {
		return read(safety.Target{}, "Read HA, replication, Ceph, pending updates and certificates of every node", func(ctx context.Context) (any, error) {
			nodes, err := env.PVE.Nodes(ctx)
			if err != nil {
				return nil, err
			}
			return clusterHealth(ctx, env.PVE, nodes, time.Now()), nil
		}), nil
	})
}

// healthReport collects the sections, each read in its own goroutine, and
// the problems of each, kept in a stable order.
type healthReport struct {
	mu       sync.Mutex
	out      ClusterHealth
	problems map[string][]string // section → sentences
}

func (h *healthReport) problem(section, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problems[section] = append(h.problems[section], fmt.Sprintf(format, args...))
}

func clusterHealth(ctx context.Context, c *pve.Client, nodes []pve.NodeEntry, now time.Time) ClusterHealth {
	h := &healthReport{problems: map[string][]string{}}
	h.out.Updates, h.out.Certificates = []NodeUpdates{}, []CertificateOut{}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
	// Guest names, for sentences; without them the VMIDs still say enough.
	names := map[int64]string{}
	if res, err := c.ClusterResources(ctx, "vm"); err == nil {
		for _, r := range res {
			names[int64(r.VMID)] = guestNoun(&r)
		}
	}
	guest := func(vmid int64) string {
		if n, ok := names[vmid]; ok {
			return n
		}
		return fmt.Sprintf("guest %d", vmid)
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.ha(ctx, c, guest) })
	wg.Go(func() { h.replication(ctx, c, guest) })
	wg.Go(func() { h.ceph(ctx, c) })
	for _, n := range nodes {
		wg.Go(func() { h.node(ctx, c, n, now) })
	}
	wg.Wait()

	sort.Slice(h.out.Updates, func(i, j int) bool { return h.out.Updates[i].Node < h.out.Updates[j].Node })
	sort.SliceStable(h.out.Certificates, func(i, j int) bool { return h.out.Certificates[i].Node < h.out.Certificates[j].Node })
	h.out.Problems = []string{}
	for _, section := range []string{"nodes", "ha", "replication", "ceph", "certificates", "updates"} {
		p := h.problems[section]
		slices.Sort(p)
		h.out.Problems = append(h.out.Problems, p...)
	}
	return h.out
}

func (h *healthReport) ha(ctx context.Context, c *pve.Client, guest func(int64) string) {
	res, err := c.HAResources(ctx)
	if err != nil {
		h.problem("ha", "HA's resources could not be read: %v", err)
		return
	}
	if len(res) == 0 {
		return
	}
	ha := &HAHealth{Enabled: true, Resources: []HAResourceOut{}}
	byID := map[string]*HAResourceOut{}
	for _, r := range res {
		ha.Resources = append(ha.Resources, HAResourceOut{SID: r.SID, State: r.State})
	}
	sort.Slice(ha.Resources, func(i, j int) bool { return ha.Resources[i].SID < ha.Resources[j].SID })
	for i := range ha.Resources {
		byID[ha.Resources[i].SID] = &ha.Resources[i]
	}
	status, err := c.HAStatus(ctx)
	if err != nil {
		h.problem("ha", "HA's current status could not be read: %v", err)
	}
	for _, e := range status {
		switch e.Type {
		case "quorum":
			ha.Quorate = bool(e.Quorate)
			if !ha.Quorate {
				h.problem("ha", "HA reports no quorum (%s): HA cannot recover guests", e.Status)
			}
		case "master":
			ha.ManagerStatus = e.Status
		case "fencing":
			ha.Enabled = e.ArmedState != "disarmed"
		case "lrm":
			if strings.Contains(e.Status, "dead") {
				h.problem("ha", "HA's resource manager on node %s does not report (%s)", e.Node, e.Status)
			}
		case "service":
			r := byID[e.SID]
			if r == nil {
				continue
			}
			r.Node, r.Status = e.Node, orWord(e.Status, e.State)
			switch r.Status {
			case "error", "fence", "recovery", "freeze":
				h.problem("ha", "HA resource %s (%s) is in state %s on node %s", r.SID, haGuest(r.SID, guest), r.Status, r.Node)
			}
		}
	}
	h.mu.Lock()
	h.out.HA = ha
	h.mu.Unlock()
}

// haGuest names the guest of an HA resource id ("vm:101").
func haGuest(sid string, guest func(int64) string) string {
	_, id, _ := strings.Cut(sid, ":")
	var vmid int64
	if _, err := fmt.Sscan(id, &vmid); err != nil {
		return sid
	}
	return guest(vmid)
}

func (h *healthReport) replication(ctx context.Context, c *pve.Client, guest func(int64) string) {
	jobs, err := c.ReplicationJobs(ctx)
	if err != nil {
		h.problem("replication", "replication jobs could not be read: %v", err)
		return
	}
	if len(jobs) == 0 {
		return
	}
	// A job's state is kept on its source node.
	states := map[string]pve.ReplicationStatus{}
	asked := map[string]bool{}
	for _, j := range jobs {
		if j.Source == "" || asked[j.Source] {
			continue
		}
		asked[j.Source] = true
		st, err := c.NodeReplication(ctx, j.Source)
		if err != nil {
			h.problem("replication", "the state of replication jobs on node %s could not be read: %v", j.Source, err)
			continue
		}
		for _, s := range st {
			states[s.ID] = s
		}
	}
	out := []ReplicationOut{}
	for _, j := range jobs {
		r := ReplicationOut{ID: j.ID, Guest: int64(j.Guest), Target: j.Target}
		if s, ok := states[j.ID]; ok {
			r.LastSync, r.Duration, r.FailCount, r.Error = unixTime(int64(s.LastSync)), round1(float64(s.Duration)), int64(s.FailCount), s.Error
		}
		out = append(out, r)
		if r.FailCount > 0 || r.Error != "" {
			last := "it has never completed"
			if r.LastSync != "" {
				last = "it last completed at " + r.LastSync
			}
			h.problem("replication", "replication job %s (%s to node %s) failed %s in a row: %s; %s",
				r.ID, guest(r.Guest), r.Target, countWord(r.FailCount, "time"), orWord(r.Error, "no error text"), last)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	h.mu.Lock()
	h.out.Replication = out
	h.mu.Unlock()
}

func (h *healthReport) ceph(ctx context.Context, c *pve.Client) {
	st, err := c.CephStatus(ctx)
	if pve.CephNotInstalled(err) {
		return
	}
	if err != nil {
		h.problem("ceph", "Ceph's status could not be read: %v", err)
		return
	}
	out := &CephHealth{Health: st.Health.Status, OSDs: int64(st.OSDMap.NumOSDs), OSDsUp: int64(st.OSDMap.NumUpOSDs),
		OSDsIn: int64(st.OSDMap.NumInOSDs), Monitors: int64(st.MonMap.NumMons), Usage: usage(int64(st.PGMap.BytesUsed), int64(st.PGMap.BytesTotal))}
	for _, name := range slices.Sorted(maps.Keys(st.Health.Checks)) {
		chk := st.Health.Checks[name]
		out.Checks = append(out.Checks, fmt.Sprintf("%s (%s): %s", name, chk.Severity, chk.Summary.Message))
	}
	if out.Health != "HEALTH_OK" {
		detail := ""
		if len(out.Checks) > 0 {
			detail = ": " + strings.Join(out.Checks, "; ")
		}
		h.problem("ceph", "Ceph reports %s%s", orWord(out.Health, "no health status"), detail)
	}
	h.mu.Lock()
	h.out.Ceph = out
	h.mu.Unlock()
}

// node reads a node's pending updates and certificates.
func (h *healthReport) node(ctx context.Context, c *pve.Client, n pve.NodeEntry, now time.Time) {
	if n.Status != "online" {
		h.problem("nodes", "node %s is %s: its updates and certificates were not read", n.Node, orWord(n.Status, "in an unknown state"))
		return
	}
	updates, uerr := c.AptUpdates(ctx, n.Node)
	certs, cerr := c.CertificatesInfo(ctx, n.Node)
	if pve.IsUnreachable(uerr) && pve.IsUnreachable(cerr) {
		h.problem("nodes", "node %s could not be reached (%v): its updates and certificates were not read", n.Node, uerr)
		return
	}
	if uerr != nil {
		h.problem("updates", "pending updates of node %s could not be read: %v", n.Node, uerr)
	} else {
		h.mu.Lock()
		h.out.Updates = append(h.out.Updates, nodeUpdates(n.Node, updates))
		h.mu.Unlock()
	}
	if cerr != nil {
		h.problem("certificates", "certificates of node %s could not be read: %v", n.Node, cerr)
		return
	}
	for _, ci := range certs {
		co := certificateOut(n.Node, ci, now)
		h.mu.Lock()
		h.out.Certificates = append(h.out.Certificates, co)
		h.mu.Unlock()
		switch {
		case co.DaysLeft < 0:
			h.problem("certificates", "certificate %s of node %s expired %s ago (%s); renew it", co.Filename, co.Node, countWord(-co.DaysLeft, "day"), co.NotAfter)
		case co.ExpiresSoon:
			h.problem("certificates", "certificate %s of node %s expires in %s (%s); renew it before then", co.Filename, co.Node, countWord(co.DaysLeft, "day"), co.NotAfter)
		}
	}
}

func nodeUpdates(node string, updates []pve.AptUpdate) NodeUpdates {
	out := NodeUpdates{Node: node, Count: len(updates), Packages: []string{}}
	security := 0
	names := make([]string, 0, len(updates))
	for _, u := range updates {
		names = append(names, u.Package)
		if strings.Contains(strings.ToLower(u.Origin), "security") {
			security++
		}
	}
	if security > 0 {
		out.Security = &security
	}
	slices.Sort(names)
	out.Packages = append(out.Packages, names[:min(len(names), maxUpdatePackages)]...)
	return out
}

func certificateOut(node string, ci pve.CertificateInfo, now time.Time) CertificateOut {
	notAfter := time.Unix(int64(ci.NotAfter), 0)
	days := int64(math.Floor(notAfter.Sub(now).Hours() / 24))
	return CertificateOut{Node: node, Filename: ci.Filename, Subject: ci.Subject, Issuer: ci.Issuer,
		NotAfter: unixTime(int64(ci.NotAfter)), DaysLeft: days, ExpiresSoon: days < certWarnDays}
}

// countWord is "1 time", "3 times".
func countWord(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
