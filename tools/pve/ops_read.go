package pve

// The reads behind the weekly operations: RRD history, the QEMU guest agent,
// container interfaces, task logs in full, HA, replication, Ceph, package
// updates and certificates.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ---- RRD history ----

// RRDPoint is one row of /nodes/{node}/rrddata or a guest's rrddata. PVE
// leaves out a value it does not have for that row (the node was down, the
// guest did not exist yet), so every value is a pointer: nil means missing.
// Rates (net, disk) are bytes per second; CPU is a fraction of MaxCPU.
type RRDPoint struct {
	Time   Int  `json:"time"`
	CPU    *Num `json:"cpu,omitempty"`
	MaxCPU *Num `json:"maxcpu,omitempty"`
	// Guests report mem/maxmem, nodes memused/memtotal.
	Mem       *Num `json:"mem,omitempty"`
	MaxMem    *Num `json:"maxmem,omitempty"`
	MemUsed   *Num `json:"memused,omitempty"`
	MemTotal  *Num `json:"memtotal,omitempty"`
	NetIn     *Num `json:"netin,omitempty"`
	NetOut    *Num `json:"netout,omitempty"`
	DiskRead  *Num `json:"diskread,omitempty"`
	DiskWrite *Num `json:"diskwrite,omitempty"`
	IOWait    *Num `json:"iowait,omitempty"`
	LoadAvg   *Num `json:"loadavg,omitempty"`
}

// RRDTimeframes are the time frames a guest's RRD data can be asked for; a
// node's also has "decade".
var RRDTimeframes = []string{"hour", "day", "week", "month", "year"}

// RRDData reads the RRD history of a node (kind "") or a guest (kind "qemu"
// or "lxc"): about 70 rows over timeframe, consolidated with cf ("AVERAGE" or
// "MAX"; "" is PVE's default, AVERAGE).
func (c *Client) RRDData(ctx context.Context, node, kind string, vmid int, timeframe, cf string) ([]RRDPoint, error) {
	path := apiPath("nodes", node, "rrddata")
	if kind == "" {
		if err := checkNode(node); err != nil {
			return nil, err
		}
	} else {
		if err := checkGuest(node, kind, vmid); err != nil {
			return nil, err
		}
		path = apiPath("nodes", node, kind, strconv.Itoa(vmid), "rrddata")
	}
	if !(timeframe == "decade" && kind == "") && !slices.Contains(RRDTimeframes, timeframe) {
		return nil, fmt.Errorf("pve: RRD time frame %q is not one of %s", timeframe, strings.Join(RRDTimeframes, ", "))
	}
	params := url.Values{"timeframe": {timeframe}}
	switch cf {
	case "":
	case "AVERAGE", "MAX":
		params.Set("cf", cf)
	default:
		return nil, fmt.Errorf("pve: RRD consolidation %q is neither AVERAGE nor MAX", cf)
	}
	var out []RRDPoint
	return out, c.do(ctx, http.MethodGet, path, params, list(&out))
}

// ---- the QEMU guest agent and container interfaces ----

// AgentIPAddress is one address of an interface, as the guest agent (and, since
// PVE 9, a container's interface list) reports it.
type AgentIPAddress struct {
	Type    string `json:"ip-address-type"` // ipv4 or ipv6
	Address string `json:"ip-address"`
	Prefix  Int    `json:"prefix"`
}

// AgentInterface is one interface of network-get-interfaces.
type AgentInterface struct {
	Name            string           `json:"name"`
	HardwareAddress string           `json:"hardware-address,omitempty"`
	IPAddresses     []AgentIPAddress `json:"ip-addresses,omitempty"`
}

// AgentOSInfo is the agent's get-osinfo answer.
type AgentOSInfo struct {
	ID            string `json:"id,omitempty"`
	Name          string `json:"name,omitempty"`
	PrettyName    string `json:"pretty-name,omitempty"`
	Version       string `json:"version,omitempty"`
	VersionID     string `json:"version-id,omitempty"`
	KernelRelease string `json:"kernel-release,omitempty"`
	Machine       string `json:"machine,omitempty"`
}

// agentGet asks a VM's guest agent one command; PVE wraps the agent's answer
// in an object with a single "result" member.
func (c *Client) agentGet(ctx context.Context, node string, vmid int, command string, result any) error {
	if err := checkGuest(node, "qemu", vmid); err != nil {
		return err
	}
	out := struct {
		Result any `json:"result"`
	}{Result: result}
	return c.do(ctx, http.MethodGet, apiPath("nodes", node, "qemu", strconv.Itoa(vmid), "agent", command), nil, &out)
}

// AgentNetworkInterfaces asks a VM's guest agent for its interfaces and addresses.
func (c *Client) AgentNetworkInterfaces(ctx context.Context, node string, vmid int) ([]AgentInterface, error) {
	var out []AgentInterface
	return out, c.agentGet(ctx, node, vmid, "network-get-interfaces", &out)
}

// AgentHostName asks a VM's guest agent for the guest's host name.
func (c *Client) AgentHostName(ctx context.Context, node string, vmid int) (string, error) {
	var out struct {
		HostName string `json:"host-name"`
	}
	return out.HostName, c.agentGet(ctx, node, vmid, "get-host-name", &out)
}

// AgentOSInfo asks a VM's guest agent which operating system runs.
func (c *Client) AgentOSInfo(ctx context.Context, node string, vmid int) (*AgentOSInfo, error) {
	var out AgentOSInfo
	if err := c.agentGet(ctx, node, vmid, "get-osinfo", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentUnavailable reports PVE's answers when a VM's guest agent cannot be
// asked: not enabled in the VM's options, the VM not running, or the agent
// not answering inside it. They are facts about the guest, not failures.
// reason is PVE's own sentence.
func AgentUnavailable(err error) (reason string, ok bool) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInternalServerError {
		return "", false
	}
	msg := strings.ToLower(apiErr.Message)
	if strings.Contains(msg, "guest agent is not running") || strings.Contains(msg, "no qemu guest agent configured") ||
		strings.Contains(msg, "is not running") {
		return apiErr.Message, true
	}
	return "", false
}

// ContainerInterface is one interface of a running container
// (/nodes/{node}/lxc/{vmid}/interfaces).
type ContainerInterface struct {
	Name            string           `json:"name"`
	HWAddr          string           `json:"hwaddr,omitempty"`
	HardwareAddress string           `json:"hardware-address,omitempty"`
	Inet            string           `json:"inet,omitempty"`  // IPv4 address/prefix
	Inet6           string           `json:"inet6,omitempty"` // IPv6 address/prefix
	IPAddresses     []AgentIPAddress `json:"ip-addresses,omitempty"`
}

// ContainerInterfaces lists a running container's interfaces and addresses,
// read by the host from the container's network namespace. PVE answers no
// list at all (null) for a container that is not running: running is false
// then.
func (c *Client) ContainerInterfaces(ctx context.Context, node string, vmid int) (ifaces []ContainerInterface, running bool, err error) {
	if err := checkGuest(node, "lxc", vmid); err != nil {
		return nil, false, err
	}
	var out *[]ContainerInterface
	if err := c.do(ctx, http.MethodGet, apiPath("nodes", node, "lxc", strconv.Itoa(vmid), "interfaces"), nil, list(&out)); err != nil {
		return nil, false, err
	}
	if out == nil {
		return nil, false, nil
	}
	return *out, true, nil
}

// ---- task logs ----

// TaskLogWindow is part of a task log and how long the whole log is.
type TaskLogWindow struct {
	// Lines are the lines asked for, N counting from 1.
	Lines []TaskLogLine
	// Total is how many lines the log has (at least, when Incomplete).
	Total int
	// Incomplete is set when the log was longer than the client reads
	// (maxTaskLogPages pages): a tail is then the tail of what was read.
	Incomplete bool
}

// Task logs are read in pages: PVE tells a log's length only in a "total"
// member beside "data", which the client's envelope does not keep, so the
// length is found by reading to the end. Nearly every log fits in one page.
const (
	taskLogPage     = 1000
	maxTaskLogPages = 100
)

// TaskLogWindow reads the first (fromStart) or the last lines of a task log,
// and counts its lines. lines must be at least 1.
func (c *Client) TaskLogWindow(ctx context.Context, node, upid string, lines int, fromStart bool) (*TaskLogWindow, error) {
	if lines < 1 {
		return nil, fmt.Errorf("pve: task log window of %d lines", lines)
	}
	w := &TaskLogWindow{Lines: []TaskLogLine{}, Incomplete: true}
	start := 0
	for page := 0; page < maxTaskLogPages; page++ {
		got, err := c.TaskLog(ctx, node, upid, start, taskLogPage)
		if err != nil {
			return nil, err
		}
		for _, l := range got {
			w.Total = max(w.Total, int(l.N), start+1)
			start++
			switch {
			case fromStart && len(w.Lines) < lines:
				w.Lines = append(w.Lines, l)
			case !fromStart:
				w.Lines = append(w.Lines, l)
				if len(w.Lines) > lines {
					w.Lines = w.Lines[len(w.Lines)-lines:]
				}
			}
		}
		if len(got) < taskLogPage {
			w.Incomplete = false
			break
		}
	}
	return w, nil
}

// ---- HA ----

// HAStatusEntry is one row of /cluster/ha/status/current: the quorum, the
// manager ("master"), each node's local resource manager ("lrm"), each HA
// service, and (PVE 9.1) the fencing state.
type HAStatusEntry struct {
	ID           string `json:"id"`
	Type         string `json:"type"` // quorum, master, lrm, service, fencing
	Node         string `json:"node"`
	Status       string `json:"status"`
	Quorate      Bool   `json:"quorate"`
	SID          string `json:"sid,omitempty"`
	State        string `json:"state,omitempty"`
	CRMState     string `json:"crm_state,omitempty"`
	RequestState string `json:"request_state,omitempty"`
	ArmedState   string `json:"armed-state,omitempty"`
	Timestamp    Int    `json:"timestamp,omitempty"`
}

// HAResource is one configured HA resource (/cluster/ha/resources).
type HAResource struct {
	SID         string `json:"sid"`
	Type        string `json:"type,omitempty"`  // vm or ct
	State       string `json:"state,omitempty"` // requested: started, stopped, …
	Group       string `json:"group,omitempty"`
	Comment     string `json:"comment,omitempty"`
	MaxRestart  Int    `json:"max_restart,omitempty"`
	MaxRelocate Int    `json:"max_relocate,omitempty"`
}

// HAStatus reads the HA manager's current view.
func (c *Client) HAStatus(ctx context.Context) ([]HAStatusEntry, error) {
	var out []HAStatusEntry
	return out, c.do(ctx, http.MethodGet, "/cluster/ha/status/current", nil, list(&out))
}

// HAResources lists the configured HA resources.
func (c *Client) HAResources(ctx context.Context) ([]HAResource, error) {
	var out []HAResource
	return out, c.do(ctx, http.MethodGet, "/cluster/ha/resources", nil, list(&out))
}

// ---- replication ----

// ReplicationJob is one configured storage replication job (/cluster/replication).
type ReplicationJob struct {
	ID       string `json:"id"` // <guest>-<jobnum>
	Type     string `json:"type"`
	Guest    Int    `json:"guest"`
	JobNum   Int    `json:"jobnum"`
	Target   string `json:"target"`
	Schedule string `json:"schedule,omitempty"`
	Source   string `json:"source,omitempty"`
	Disable  Bool   `json:"disable"`
	Comment  string `json:"comment,omitempty"`
}

// ReplicationStatus is one job's state on its source node (/nodes/{node}/replication).
type ReplicationStatus struct {
	ID        string `json:"id"`
	Guest     Int    `json:"guest"`
	Target    string `json:"target"`
	Source    string `json:"source,omitempty"`
	Schedule  string `json:"schedule,omitempty"`
	LastSync  Int    `json:"last_sync,omitempty"`
	LastTry   Int    `json:"last_try,omitempty"`
	NextSync  Int    `json:"next_sync,omitempty"`
	Duration  Num    `json:"duration,omitempty"` // seconds the last run took
	FailCount Int    `json:"fail_count,omitempty"`
	Error     string `json:"error,omitempty"`
	Disable   Bool   `json:"disable"`
}

// ReplicationJobs lists the cluster's replication jobs (those of guests the
// token may audit).
func (c *Client) ReplicationJobs(ctx context.Context) ([]ReplicationJob, error) {
	var out []ReplicationJob
	return out, c.do(ctx, http.MethodGet, "/cluster/replication", nil, list(&out))
}

// NodeReplication lists the state of the replication jobs whose guests run on node.
func (c *Client) NodeReplication(ctx context.Context, node string) ([]ReplicationStatus, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out []ReplicationStatus
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "replication"), nil, list(&out))
}

// ---- Ceph ----

// CephStatus is the part of `ceph status` (/cluster/ceph/status) Jarvis reads.
type CephStatus struct {
	Health struct {
		Status string                     `json:"status"` // HEALTH_OK, HEALTH_WARN, HEALTH_ERR
		Checks map[string]CephHealthCheck `json:"checks"`
	} `json:"health"`
	OSDMap struct {
		NumOSDs   Int `json:"num_osds"`
		NumUpOSDs Int `json:"num_up_osds"`
		NumInOSDs Int `json:"num_in_osds"`
	} `json:"osdmap"`
	PGMap struct {
		NumPGs     Int `json:"num_pgs"`
		BytesUsed  Int `json:"bytes_used"`
		BytesTotal Int `json:"bytes_total"`
	} `json:"pgmap"`
	MonMap struct {
		NumMons Int `json:"num_mons"`
	} `json:"monmap"`
}

// CephHealthCheck is one health warning or error.
type CephHealthCheck struct {
	Severity string `json:"severity"`
	Summary  struct {
		Message string `json:"message"`
	} `json:"summary"`
}

// CephStatus reads the Ceph cluster's status; see CephNotInstalled for a
// cluster without Ceph.
func (c *Client) CephStatus(ctx context.Context) (*CephStatus, error) {
	var out CephStatus
	if err := c.do(ctx, http.MethodGet, "/cluster/ceph/status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CephNotInstalled reports PVE's answer when Ceph is not set up: "binary not
// installed: /usr/bin/ceph-mon" or "pveceph configuration not initialized".
func CephNotInstalled(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInternalServerError {
		return false
	}
	msg := strings.ToLower(apiErr.Message)
	return strings.Contains(msg, "not installed") || strings.Contains(msg, "not initialized")
}

// ---- package updates and certificates ----

// AptUpdate is one package with an update pending (/nodes/{node}/apt/update,
// the list of the last `apt update`).
type AptUpdate struct {
	Package    string `json:"Package"`
	Title      string `json:"Title,omitempty"`
	Origin     string `json:"Origin,omitempty"` // Debian, Proxmox, …
	Version    string `json:"Version,omitempty"`
	OldVersion string `json:"OldVersion,omitempty"`
	Priority   string `json:"Priority,omitempty"`
	Section    string `json:"Section,omitempty"`
	Arch       string `json:"Arch,omitempty"`
}

// AptUpdates lists a node's pending package updates.
func (c *Client) AptUpdates(ctx context.Context, node string) ([]AptUpdate, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out []AptUpdate
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "apt", "update"), nil, list(&out))
}

// CertificateInfo is one certificate a node uses (/nodes/{node}/certificates/info).
type CertificateInfo struct {
	Filename    string   `json:"filename,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	NotBefore   Int      `json:"notbefore,omitempty"`
	NotAfter    Int      `json:"notafter,omitempty"`
	SAN         []string `json:"san,omitempty"`
}

// CertificatesInfo lists a node's certificates.
func (c *Client) CertificatesInfo(ctx context.Context, node string) ([]CertificateInfo, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out []CertificateInfo
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "certificates", "info"), nil, list(&out))
}
