package tools

// download_to_storage: a node fetches an ISO image or a container template
// over https into a storage; Jarvis itself downloads nothing.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

type DownloadToStorageInput struct {
	URL               string `json:"url" jsonschema:"https URL of the file (no other scheme, no user:password@); Proxmox downloads it and checks the server's certificate"`
	Storage           string `json:"storage" jsonschema:"the storage to put it in; it must hold the content type (see get_storage)"`
	Node              string `json:"node,omitempty" jsonschema:"the node that downloads it (default: the first online node that has the storage)"`
	Content           string `json:"content" jsonschema:"iso (ISO images) or vztmpl (container templates)"`
	Filename          string `json:"filename,omitempty" jsonschema:"file name in the storage (default: the URL's last path segment): letters, digits, '.', '_' and '-', ending in .iso or .img (iso), .tar.gz, .tar.xz or .tar.zst (vztmpl)"`
	Checksum          string `json:"checksum,omitempty" jsonschema:"the file's expected checksum, in hex; Proxmox refuses a file that does not match"`
	ChecksumAlgorithm string `json:"checksum_algorithm,omitempty" jsonschema:"md5, sha1, sha224, sha256, sha384 or sha512; needed with checksum"`
}

type DownloadResult struct {
	UPID          string  `json:"upid" jsonschema:"the download task's id"`
	Node          string  `json:"node"`
	Storage       string  `json:"storage"`
	VolID         string  `json:"volid" jsonschema:"the new volume, e.g. local:iso/debian-13.iso"`
	Content       string  `json:"content"`
	SizeBytes     int64   `json:"size_bytes,omitempty"`
	Size          string  `json:"size,omitempty"`
	Verified      bool    `json:"checksum_verified" jsonschema:"true when Proxmox checked the checksum given"`
	ExitStatus    string  `json:"exit_status"`
	WaitedSeconds float64 `json:"waited_seconds"`
}

// TaskUPID lets the audit log record the task id.
func (r DownloadResult) TaskUPID() string { return r.UPID }

var (
	downloadNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$`)
	downloadExts   = map[string][]string{"iso": {".iso", ".img"}, "vztmpl": {".tar.gz", ".tar.xz", ".tar.zst"}}
	checksumLen    = map[string]int{"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
	hexRE          = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	hostLabelRE    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

const maxURLLen = 2048

func downloadToStorage() *Tool {
	return define[DownloadToStorageInput, DownloadResult](spec{
		name: "download_to_storage", title: "Download to storage", tier: safety.Yellow,
		description: "Have a node download an ISO image or a container template from an https URL into a storage (PVE's download-url: the node fetches it, verifying the TLS certificate and, when given, a checksum). Refused when the storage does not take that content or a file of that name exists.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "url")
			p.Pattern, p.MaxLength = `^https://`, ptr(maxURLLen)
			property(s, "storage").Pattern = storageRE.String()
			nodeSchema(property(s, "node"))
			enumSchema(property(s, "content"), "iso", "vztmpl")
			f := property(s, "filename")
			f.Pattern, f.MaxLength = downloadNameRE.String(), ptr(255)
			c := property(s, "checksum")
			c.Pattern, c.MaxLength = hexRE.String(), ptr(128)
			enumSchema(property(s, "checksum_algorithm"), "md5", "sha1", "sha224", "sha256", "sha384", "sha512")
		},
	}, prepareDownload)
}

// checkDownloadURL accepts an https URL with a host (a DNS name or an IP
// address) and no credentials.
func checkDownloadURL(raw string) (*url.URL, error) {
	if len(raw) > maxURLLen {
		return nil, inputErrorf("url is %d characters long; at most %d", len(raw), maxURLLen)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, inputErrorf("url contains spaces or control characters; percent-encode them")
	}
	// First, so that no message below repeats a credential.
	if safety.RedactURL(raw) != raw {
		return nil, inputErrorf("url %q carries a credential; Jarvis keeps every plan in its audit log and Proxmox writes the URL into the task log, so it does not download from signed or token URLs, or with a password: use a public link", safety.RedactURL(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, inputErrorf("url %q is not a URL: %v", raw, err)
	}
	if u.Scheme != "https" {
		return nil, inputErrorf("url %q: only https URLs are downloaded (not %s), so that the node can check who it talks to", raw, orWord(u.Scheme, "no scheme"))
	}
	if u.User != nil {
		return nil, inputErrorf("url %q carries credentials (user:password@); Jarvis does not pass credentials to a download, and they would end up in the task log", redactUserinfo(u))
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, inputErrorf("url %q has no host", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip == nil {
		labels := strings.Split(strings.TrimSuffix(host, "."), ".")
		for _, l := range labels {
			if !hostLabelRE.MatchString(l) {
				return nil, inputErrorf("url %q: host %q is neither a DNS name nor an IP address", raw, host)
			}
		}
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscan(p, &n); err != nil || n < 1 || n > 65535 {
			return nil, inputErrorf("url %q: port %q is not a port", raw, p)
		}
	}
	return u, nil
}

func redactUserinfo(u *url.URL) string {
	c := *u
	c.User = url.User("…")
	return c.String()
}

func prepareDownload(ctx context.Context, env *Env, in DownloadToStorageInput) (*Call, error) {
	u, err := checkDownloadURL(in.URL)
	if err != nil {
		return nil, err
	}
	exts, ok := downloadExts[in.Content]
	if !ok {
		return nil, inputErrorf("content %q: use iso (ISO images) or vztmpl (container templates)", in.Content)
	}
	if !storageRE.MatchString(in.Storage) {
		return nil, inputErrorf("storage %q is not a storage name (see get_storage)", in.Storage)
	}
	if err := checkOptionalNode(in.Node); err != nil {
		return nil, err
	}
	name := in.Filename
	if name == "" {
		name = path.Base(u.Path)
		if name == "/" || name == "." {
			name = ""
		}
	}
	if name == "" || !downloadNameRE.MatchString(name) || strings.Contains(name, "..") {
		return nil, inputErrorf("file name %q: use letters, digits, '.', '_' and '-' (up to 255, not starting with '.' or '-'); set filename when the URL does not end in one", name)
	}
	if !slices.ContainsFunc(exts, func(ext string) bool { return strings.HasSuffix(strings.ToLower(name), ext) }) {
		return nil, inputErrorf("file name %q: %s files must end in %s", name, in.Content, strings.Join(exts, ", "))
	}
	algo := strings.ToLower(in.ChecksumAlgorithm)
	sum := strings.ToLower(in.Checksum)
	switch {
	case sum == "" && algo != "":
		return nil, inputErrorf("checksum_algorithm %s needs a checksum", algo)
	case sum != "" && algo == "":
		return nil, inputErrorf("checksum needs checksum_algorithm (md5, sha1, sha224, sha256, sha384 or sha512)")
	case sum != "" && checksumLen[algo] == 0:
		return nil, inputErrorf("checksum_algorithm %q: use md5, sha1, sha224, sha256, sha384 or sha512", algo)
	case sum != "" && (!hexRE.MatchString(sum) || len(sum) != checksumLen[algo]):
		return nil, inputErrorf("checksum is not a %s checksum: want %d hex digits, got %q", algo, checksumLen[algo], shorten(sum, 20))
	}

	online, names, err := onlineNodes(ctx, env)
	if err != nil {
		return nil, err
	}
	node := in.Node
	if node != "" {
		if err := needOnline(node, online, names, "the downloading node"); err != nil {
			return nil, err
		}
	} else {
		rows, err := env.PVE.ClusterResources(ctx, "storage")
		if err != nil {
			return nil, fmt.Errorf("reading the cluster's storage: %w", err)
		}
		var on []string
		for _, r := range rows {
			if r.Storage == in.Storage && r.Status == "available" && online[r.Node] {
				on = append(on, r.Node)
			}
		}
		if len(on) == 0 {
			return nil, inputErrorf("no online node has storage %s available now (see get_storage)", in.Storage)
		}
		sort.Strings(on)
		node = on[0]
	}
	st, list, err := storageOnNode(ctx, env, node, in.Storage)
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil:
		return nil, inputErrorf("storage %s is not available on node %s; storages there for %s: %s", in.Storage, node, in.Content, storagesFor(list, in.Content))
	case !storageHolds(st.Content, in.Content):
		return nil, inputErrorf("storage %s does not take %s files (its content: %s); storages on node %s that do: %s", in.Storage, in.Content, st.Content, node, storagesFor(list, in.Content))
	case !bool(st.Enabled) || !bool(st.Active):
		return nil, inputErrorf("storage %s is not active on node %s now", in.Storage, node)
	}
	volid := in.Storage + ":" + in.Content + "/" + name
	items, err := env.PVE.StorageContent(ctx, node, in.Storage, in.Content)
	if err != nil {
		return nil, nodeError(ctx, env, node, err)
	}
	for _, it := range items {
		if it.VolID == volid {
			return nil, inputErrorf("storage %s already has %s (%s) on node %s; choose another filename, or delete that file first", in.Storage, volid, humanBytes(int64(it.Size)), node)
		}
	}
	where := "on node " + node
	if bool(st.Shared) {
		where = "(shared), downloaded by node " + node
	}
	effect := fmt.Sprintf("Download %s into storage %s %s as %s; the node fetches it itself over https, checking the server's certificate", u.Redacted(), in.Storage, where, volid)
	if sum != "" {
		effect += fmt.Sprintf(", and Proxmox keeps it only if its %s checksum is %s", algo, sum)
	}
	return &Call{Target: safety.Target{Node: node}, Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "download of " + in.URL + " to " + volid, node: node}
		upid, err := env.PVE.DownloadURL(ctx, node, in.Storage, pve.DownloadOptions{URL: in.URL, Content: in.Content, Filename: name,
			Checksum: sum, ChecksumAlgorithm: algo})
		if err != nil {
			return nil, withCheck(w.sendError(err), fmt.Sprintf("Before retrying, check get_recent_tasks for node %s (a download task) and storage %s's content to see whether it started", node, in.Storage))
		}
		res, err := waitForTask(ctx, env, upid, 6*time.Hour, logProgress(ctx, env, upid, "downloading", progress), w)
		if err != nil {
			return nil, err
		}
		out := DownloadResult{UPID: upid, Node: node, Storage: in.Storage, VolID: volid, Content: in.Content, Verified: sum != "",
			ExitStatus: res.ExitStatus, WaitedSeconds: res.WaitedSeconds}
		if items, err := env.PVE.StorageContent(Fresh(ctx), node, in.Storage, in.Content); err == nil {
			for _, it := range items {
				if it.VolID == volid {
					out.SizeBytes, out.Size = int64(it.Size), humanBytes(int64(it.Size))
				}
			}
		}
		return out, nil
	}}, nil
}
