package pve

// Requests that create things: a free VMID, clones, backups, restores,
// downloads, and the config keys Jarvis sets on what it created (tags, notes,
// cloud-init). Each one checks its arguments before anything is sent.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// NextID asks PVE for a free VMID (GET /cluster/nextid). With vmid > 0 it
// asks whether that one is free: PVE answers it back, or a 400 whose
// per-parameter message says "VM 120 already exists".
func (c *Client) NextID(ctx context.Context, vmid int) (int, error) {
	var params url.Values
	if vmid != 0 {
		if !pveid.ValidVMID(vmid) {
			return 0, fmt.Errorf("pve: VMID %d is outside %d..%d", vmid, pveid.MinVMID, pveid.MaxVMID)
		}
		params = url.Values{"vmid": {strconv.Itoa(vmid)}}
	}
	var out Int
	if err := c.do(ctx, http.MethodGet, "/cluster/nextid", params, &out); err != nil {
		return 0, err
	}
	if !pveid.ValidVMID(int(out)) {
		return 0, &DecodeError{Method: http.MethodGet, Path: "/cluster/nextid", Err: fmt.Errorf("%d is not a VMID", out)}
	}
	return int(out), nil
}

// CloneOptions are the parameters of a clone that Jarvis uses.
type CloneOptions struct {
	NewID int
	// Name is the new guest's name (qemu "name", lxc "hostname"); "" keeps PVE's default.
	Name string
	// Target is the node the clone is made on; "" is the source's node.
	Target string
	// Storage is the target storage of a full clone; "" keeps each disk's own.
	Storage string
	// Full makes a full copy; otherwise a linked clone (templates only).
	Full bool
}

// CloneGuest clones a VM or container (POST …/{vmid}/clone) and returns the
// task's UPID. The new guest is created stopped.
func (c *Client) CloneGuest(ctx context.Context, node, kind string, vmid int, o CloneOptions) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if !pveid.ValidVMID(o.NewID) {
		return "", fmt.Errorf("pve: new VMID %d is outside %d..%d", o.NewID, pveid.MinVMID, pveid.MaxVMID)
	}
	if o.NewID == vmid {
		return "", errors.New("pve: a clone needs a VMID of its own")
	}
	if o.Storage != "" && !o.Full {
		return "", errors.New("pve: a linked clone stays on its template's storage; storage is for full clones")
	}
	params := url.Values{"newid": {strconv.Itoa(o.NewID)}, "full": {"0"}}
	if o.Full {
		params.Set("full", "1")
	}
	if o.Name != "" {
		key := "name"
		if kind == "lxc" {
			key = "hostname"
		}
		params.Set(key, o.Name)
	}
	if o.Target != "" && o.Target != node {
		params.Set("target", o.Target)
	}
	if o.Storage != "" {
		params.Set("storage", o.Storage)
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind, strconv.Itoa(vmid), "clone"), params)
}

// metaKeys are the config keys SetGuestMeta may set or delete: the ones that
// describe a guest (tags, notes) and, for VMs, cloud-init's user, keys and
// first address. Nothing that changes how the guest runs.
var metaKeys = map[string]map[string]bool{
	"qemu": {"tags": true, "description": true, "ciuser": true, "sshkeys": true, "ipconfig0": true},
	"lxc":  {"tags": true, "description": true},
}

// SetGuestMeta writes a guest's tags, notes (description) and, for VMs,
// cloud-init user, SSH keys and ipconfig0 (PUT …/config, which answers when
// it is done). set holds the new values (sshkeys already encoded, see
// EncodeSSHKeys), del the keys to remove; digest, when set, makes PVE refuse
// if the config changed since it was read.
func (c *Client) SetGuestMeta(ctx context.Context, node, kind string, vmid int, set url.Values, del []string, digest string) error {
	if err := checkGuest(node, kind, vmid); err != nil {
		return err
	}
	if len(set) == 0 && len(del) == 0 {
		return errors.New("pve: nothing to set")
	}
	params := url.Values{}
	for k, v := range set {
		if !metaKeys[kind][k] || len(v) != 1 {
			return fmt.Errorf("pve: %s is not a tag, note or cloud-init key of a %s guest", k, kind)
		}
		params.Set(k, v[0])
	}
	for _, k := range del {
		if !metaKeys[kind][k] || params.Has(k) {
			return fmt.Errorf("pve: cannot delete %s here", k)
		}
	}
	if len(del) > 0 {
		sorted := slices.Clone(del)
		slices.Sort(sorted)
		params.Set("delete", strings.Join(sorted, ","))
	}
	if digest != "" {
		params.Set("digest", digest)
	}
	return c.do(ctx, http.MethodPut, apiPath("nodes", node, kind, strconv.Itoa(vmid), "config"), params, nil)
}

// EncodeSSHKeys encodes public keys the way PVE stores cloud-init's sshkeys
// ("format": "urlencoded"): every byte but letters, digits and -._~ as %XX,
// spaces as %20, never '+'.
func EncodeSSHKeys(keys string) string {
	var b strings.Builder
	for i := 0; i < len(keys); i++ {
		ch := keys[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// VzdumpOptions are the parameters of a backup that Jarvis uses.
type VzdumpOptions struct {
	VMID    int
	Storage string
	// Mode is snapshot, suspend or stop.
	Mode string
	// Compress is zstd, lzo, gzip or "0" (none).
	Compress string
	// Notes becomes the backup's notes (notes-template; newlines and
	// backslashes are escaped as PVE asks).
	Notes string
}

// VzdumpSkippedError is PVE's answer "OK" instead of a task: vzdump was sent to
// a node the guest is not on, and did nothing.
type VzdumpSkippedError struct {
	Node string
	VMID int
}

func (e *VzdumpSkippedError) Error() string {
	return fmt.Sprintf("pve: node %s started no backup of VMID %d: the guest is not on that node", e.Node, e.VMID)
}

var vzdumpModes = []string{"snapshot", "suspend", "stop"}
var vzdumpCompressions = []string{"zstd", "lzo", "gzip", "0"}

// Vzdump backs up one guest (POST /nodes/{node}/vzdump) and returns the task's
// UPID. It never prunes older backups (remove=0).
func (c *Client) Vzdump(ctx context.Context, node string, o VzdumpOptions) (string, error) {
	if err := checkNode(node); err != nil {
		return "", err
	}
	if !pveid.ValidVMID(o.VMID) {
		return "", fmt.Errorf("pve: VMID %d is outside %d..%d", o.VMID, pveid.MinVMID, pveid.MaxVMID)
	}
	if o.Storage == "" {
		return "", errors.New("pve: backup storage is empty")
	}
	if !slices.Contains(vzdumpModes, o.Mode) {
		return "", fmt.Errorf("pve: backup mode %q is not one of %v", o.Mode, vzdumpModes)
	}
	if !slices.Contains(vzdumpCompressions, o.Compress) {
		return "", fmt.Errorf("pve: compression %q is not one of %v", o.Compress, vzdumpCompressions)
	}
	params := url.Values{"vmid": {strconv.Itoa(o.VMID)}, "storage": {o.Storage}, "mode": {o.Mode},
		"compress": {o.Compress}, "remove": {"0"}}
	if o.Notes != "" {
		params.Set("notes-template", EscapeNotesTemplate(o.Notes))
	}
	path := apiPath("nodes", node, "vzdump")
	var answer string
	if err := c.do(ctx, http.MethodPost, path, params, &answer); err != nil {
		return "", err
	}
	if answer == "OK" {
		return "", &VzdumpSkippedError{Node: node, VMID: o.VMID}
	}
	id, err := ParseUPID(answer)
	if err != nil {
		return "", &DecodeError{Method: http.MethodPost, Path: path, Err: fmt.Errorf("expected a task id: %w", err)}
	}
	c.noteTaskStarted(id.Node, answer)
	return answer, nil
}

// EscapeNotesTemplate writes notes as vzdump's notes-template wants them: one
// line, newline as \n and backslash as \\.
func EscapeNotesTemplate(notes string) string {
	notes = strings.ReplaceAll(notes, `\`, `\\`)
	notes = strings.ReplaceAll(notes, "\r\n", "\n")
	return strings.ReplaceAll(notes, "\n", `\n`)
}

// RestoreOptions are the parameters of a restore that Jarvis uses.
type RestoreOptions struct {
	// Archive is the backup's volume id.
	Archive string
	VMID    int
	// Storage is where the disks go; "" keeps the backup's own storages.
	Storage string
	// Force replaces an existing guest with this VMID.
	Force bool
	// Unique gives the restored guest new MAC addresses.
	Unique bool
	// Start starts the guest once restored.
	Start bool
}

// RestoreGuest restores a vzdump backup into a VM (POST /nodes/{node}/qemu
// with archive) or a container (POST /nodes/{node}/lxc with ostemplate and
// restore=1), and returns the task's UPID.
func (c *Client) RestoreGuest(ctx context.Context, node, kind string, o RestoreOptions) (string, error) {
	if err := checkGuest(node, kind, o.VMID); err != nil {
		return "", err
	}
	if o.Archive == "" {
		return "", errors.New("pve: backup archive is empty")
	}
	params := url.Values{"vmid": {strconv.Itoa(o.VMID)}}
	if kind == "qemu" {
		params.Set("archive", o.Archive)
	} else {
		params.Set("ostemplate", o.Archive)
		params.Set("restore", "1")
	}
	if o.Storage != "" {
		params.Set("storage", o.Storage)
	}
	for k, on := range map[string]bool{"force": o.Force, "unique": o.Unique, "start": o.Start} {
		if on {
			params.Set(k, "1")
		}
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind), params)
}

// DownloadOptions are the parameters of a download that Jarvis uses.
type DownloadOptions struct {
	URL string
	// Content is iso or vztmpl.
	Content  string
	Filename string
	// Checksum and ChecksumAlgorithm go together or not at all.
	Checksum, ChecksumAlgorithm string
}

// DownloadURL makes a node download a file into a storage (POST
// /nodes/{node}/storage/{storage}/download-url), always verifying the
// server's certificate, and returns the task's UPID.
func (c *Client) DownloadURL(ctx context.Context, node, storage string, o DownloadOptions) (string, error) {
	if err := checkNode(node); err != nil {
		return "", err
	}
	if storage == "" || o.Filename == "" {
		return "", errors.New("pve: storage and file name must be set")
	}
	if !strings.HasPrefix(o.URL, "https://") {
		return "", errors.New("pve: only https URLs are downloaded")
	}
	if o.Content != "iso" && o.Content != "vztmpl" {
		return "", fmt.Errorf("pve: content %q is neither iso nor vztmpl", o.Content)
	}
	if (o.Checksum == "") != (o.ChecksumAlgorithm == "") {
		return "", errors.New("pve: a checksum needs its algorithm, and an algorithm its checksum")
	}
	params := url.Values{"url": {o.URL}, "content": {o.Content}, "filename": {o.Filename}, "verify-certificates": {"1"}}
	if o.Checksum != "" {
		params.Set("checksum", o.Checksum)
		params.Set("checksum-algorithm", o.ChecksumAlgorithm)
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, "storage", storage, "download-url"), params)
}
