package pvesim

// Writing a guest's config: PUT /nodes/{node}/{qemu|lxc}/{vmid}/config (done
// when it answers) and, for VMs, POST …/config (a task). Both check what PVE
// checks: the values' formats, a privilege per option, the digest, the lock,
// balloon against memory.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

var (
	minOne   = 1
	minZero  = 0
	minMem   = 16
	minDelay = 1
)

func configParams(kind string, async bool) map[string]param {
	p := map[string]param{"tags": str, "description": str, "onboot": flag, "delete": str, "digest": str,
		"cores": {typ: "integer", min: &minOne}}
	if kind == "qemu" {
		for _, k := range []string{"ciuser", "cipassword", "sshkeys", "ipconfig0", "name", "memory"} {
			p[k] = str
		}
		p["balloon"] = param{typ: "integer", min: &minZero}
		p["sockets"] = param{typ: "integer", min: &minOne}
	} else {
		p["hostname"] = str
		p["memory"] = param{typ: "integer", min: &minMem}
		p["swap"] = param{typ: "integer", min: &minZero}
	}
	if async {
		p["background_delay"] = param{typ: "integer", min: &minDelay}
	}
	return p
}

// configPrivileges is the privilege PVE checks for each option
// (check_vm_modify_config_perm, assert_tag_permissions); several mean any.
var configPrivileges = map[string]map[string][]string{
	"qemu": {
		"tags": {"VM.Config.Options"}, "description": {"VM.Config.Options"}, "onboot": {"VM.Config.Options"}, "name": {"VM.Config.Options"},
		"cores": {"VM.Config.CPU"}, "sockets": {"VM.Config.CPU"}, "memory": {"VM.Config.Memory"}, "balloon": {"VM.Config.Memory"},
		"ciuser": {"VM.Config.Cloudinit", "VM.Config.Network"}, "cipassword": {"VM.Config.Cloudinit", "VM.Config.Network"},
		"sshkeys": {"VM.Config.Cloudinit", "VM.Config.Network"}, "ipconfig0": {"VM.Config.Cloudinit", "VM.Config.Network"},
	},
	"lxc": {
		"tags": {"VM.Config.Options"}, "description": {"VM.Config.Options"}, "onboot": {"VM.Config.Options"}, "hostname": {"VM.Config.Options"},
		"cores": {"VM.Config.CPU"}, "memory": {"VM.Config.Memory"}, "swap": {"VM.Config.Memory"},
	},
}

var (
	tagRE      = regexp.MustCompile(`(?i)^[a-z0-9_][a-z0-9_+.-]*$`)
	dnsNameRE  = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$`)
	configIDRE = regexp.MustCompile(`^[a-z][a-z_-]*\d*$`)
	qemuMemRE  = regexp.MustCompile(`^(?:current=)?(\d+)$`)
)

// pveList splits PVE's lists (tags, delete) on ',', ';' and spaces.
func pveList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == 0 })
}

// configChange is a config write whose values and privileges were checked.
type configChange struct {
	set    map[string]string
	del    []string
	digest string
}

// checkConfigWrite makes the checks PVE makes before it looks at the config:
// formats (400) and privileges (403).
func (s *Sim) checkConfigWrite(c *call, g *guest) (configChange, *response) {
	ch := configChange{set: map[string]string{}, digest: c.params["digest"]}
	errs := map[string]string{}
	for k, v := range c.params {
		switch k {
		case "digest", "delete", "background_delay":
			continue
		case "tags":
			for _, tag := range pveList(v) {
				if !tagRE.MatchString(tag) {
					errs[k] = "invalid format - invalid characters in tag"
				}
			}
		case "description":
			if len([]rune(v)) > 8192 {
				errs[k] = "value may only be 8192 characters long"
			}
		case "name", "hostname":
			if !dnsNameRE.MatchString(v) {
				errs[k] = "invalid format - value does not look like a valid DNS name"
			}
		case "sshkeys":
			if _, err := url.PathUnescape(v); err != nil {
				errs[k] = "invalid format - invalid urlencoded string"
			}
		case "ipconfig0":
			if msg := checkIPConfig(v); msg != "" {
				errs[k] = "invalid format - " + msg
			}
		case "memory":
			if g.kind == "qemu" {
				if memoryMiB(v) < minMem {
					errs[k] = fmt.Sprintf("invalid format - value '%s' does not match format '[current=]<integer>' with a minimum of %d", v, minMem)
				}
			}
		case "sockets":
			if v != "1" {
				r := errorResponse(http.StatusInternalServerError, "pvesim: more than one CPU socket is not simulated")
				return ch, &r
			}
		}
		ch.set[k] = v
	}
	for _, k := range pveList(c.params["delete"]) {
		if !configIDRE.MatchString(k) {
			errs["delete"] = fmt.Sprintf("invalid format - invalid configuration ID '%s'", k)
			continue
		}
		if _, both := ch.set[k]; both {
			errs["delete"] = fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", k, k)
			continue
		}
		if _, known := configPrivileges[g.kind][k]; !known {
			r := errorResponse(http.StatusInternalServerError, fmt.Sprintf("pvesim: deleting '%s' is not simulated", k))
			return ch, &r
		}
		ch.del = append(ch.del, k)
	}
	if len(errs) > 0 {
		r := badRequest(errs)
		return ch, &r
	}
	if keys, ok := ch.set["sshkeys"]; ok {
		decoded, _ := url.PathUnescape(keys)
		if !validPublicKeys(decoded) {
			r := errorResponse(http.StatusInternalServerError, "SSH public key validation error")
			return ch, &r
		}
	}
	// A privilege per option, set or deleted.
	path := fmt.Sprintf("/vms/%d", g.vmid)
	keys := slices.Concat(slices.Sorted(maps.Keys(ch.set)), ch.del)
	for _, k := range keys {
		privs := configPrivileges[g.kind][k]
		if !slices.ContainsFunc(privs, func(p string) bool { return s.held(c.user, path, p) }) {
			r := permDenied(path, privs...)
			return ch, &r
		}
	}
	return ch, nil
}

// currentDigest is the digest GET …/config answers now.
func (s *Sim) currentDigest(g *guest) string {
	m := s.guestConfigJSON(g)
	if g.parent != "" {
		m["parent"] = g.parent
	}
	return digest(m)
}

// applyConfig makes the checks PVE makes on the config itself (digest, lock,
// balloon against memory) and writes the change; it answers PVE's error, or "".
func (s *Sim) applyConfig(g *guest, ch configChange) string {
	if ch.digest != "" && ch.digest != s.currentDigest(g) {
		return "detected modified configuration - file changed by other user? Try again."
	}
	if g.lock != "" {
		// PVE's check_lock names the kind, not the VMID.
		return fmt.Sprintf("%s is locked (%s)", g.guestWord(), g.lock)
	}
	mem, balloon := g.maxmem, g.balloon
	if v, ok := ch.set["memory"]; ok {
		mem = int64(memoryMiB(v)) * mib
	}
	if v, ok := ch.set["balloon"]; ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		balloon = n * mib
	}
	if slices.Contains(ch.del, "memory") {
		mem = 512 * mib
	}
	if slices.Contains(ch.del, "balloon") {
		balloon = 0
	}
	if g.kind == "qemu" && balloon > mem {
		return "balloon value too large (must be smaller than assigned memory)"
	}
	for k, v := range ch.set {
		switch k {
		case "tags":
			g.tags = normalTags(v)
		case "description":
			g.description = v
		case "name", "hostname":
			g.name = v
		case "onboot":
			g.onboot = v == "1"
		case "cores":
			g.cores, _ = strconv.Atoi(v)
		case "ciuser":
			g.ciuser = v
		case "cipassword":
			// PVE keeps a crypt(3) hash, never the password.
			sum := sha256.Sum256([]byte(v))
			g.cipassword = "$5$" + hex.EncodeToString(sum[:8]) + "$" + base64.RawStdEncoding.EncodeToString(sum[8:])
		case "sshkeys":
			g.sshkeys = v
		case "ipconfig0":
			g.ipconfig0 = v
		}
	}
	g.maxmem, g.balloon = mem, balloon
	for _, k := range ch.del {
		switch k {
		case "tags":
			g.tags = ""
		case "description":
			g.description = ""
		case "name", "hostname":
			g.name = ""
		case "onboot":
			g.onboot = false
		case "cores":
			g.cores = 1
		case "ciuser":
			g.ciuser = ""
		case "cipassword":
			g.cipassword = ""
		case "sshkeys":
			g.sshkeys = ""
		case "ipconfig0":
			g.ipconfig0 = ""
		}
	}
	return ""
}

func memoryMiB(v string) int {
	if m := qemuMemRE.FindStringSubmatch(v); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// normalTags is a tag list as PVE writes it: unique (case-insensitively),
// sorted, separated by ';'.
func normalTags(v string) string {
	seen := map[string]bool{}
	var out []string
	for _, t := range pveList(v) {
		if !seen[strings.ToLower(t)] {
			seen[strings.ToLower(t)] = true
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return strings.Join(out, ";")
}

func (s *Sim) putGuestConfig(c *call) response {
	g, _, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	ch, errRes := s.checkConfigWrite(c, g)
	if errRes != nil {
		return *errRes
	}
	if msg := s.applyConfig(g, ch); msg != "" {
		return errorResponse(http.StatusInternalServerError, msg)
	}
	return dataResponse(nil)
}

// postGuestConfig is the asynchronous form: the config is checked and written
// by a worker, whose exit status carries PVE's error.
func (s *Sim) postGuestConfig(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	ch, errRes := s.checkConfigWrite(c, g)
	if errRes != nil {
		return *errRes
	}
	t := s.startTask(n, "qmconfig", strconv.Itoa(g.vmid), c.user, nil, func() (string, []string) {
		if msg := s.applyConfig(g, ch); msg != "" {
			return msg, nil
		}
		return "OK", nil
	})
	t.end = t.start.Add(s.scale(0.3))
	return taskResponse(t)
}

// checkIPConfig checks one ipconfig value (pve-qm-ipconfig): ip=, gw=, ip6=,
// gw6=; it answers what is wrong, or "".
func checkIPConfig(v string) string {
	seen := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		if !ok || seen[k] != "" {
			return fmt.Sprintf("invalid ipconfig '%s'", v)
		}
		seen[k] = val
		switch k {
		case "ip":
			if val == "dhcp" {
				continue
			}
			if p, err := netip.ParsePrefix(val); err != nil || !p.Addr().Is4() {
				return fmt.Sprintf("invalid IPv4 address '%s'", val)
			}
		case "gw":
			if a, err := netip.ParseAddr(val); err != nil || !a.Is4() {
				return fmt.Sprintf("invalid IPv4 gateway '%s'", val)
			}
		case "ip6":
			if val == "dhcp" || val == "auto" {
				continue
			}
			if p, err := netip.ParsePrefix(val); err != nil || !p.Addr().Is6() {
				return fmt.Sprintf("invalid IPv6 address '%s'", val)
			}
		case "gw6":
			if a, err := netip.ParseAddr(val); err != nil || !a.Is6() {
				return fmt.Sprintf("invalid IPv6 gateway '%s'", val)
			}
		default:
			return fmt.Sprintf("invalid ipconfig key '%s'", k)
		}
	}
	if seen["gw"] != "" && (seen["ip"] == "" || seen["ip"] == "dhcp") {
		return "gateway specified without specifying an IP address"
	}
	if seen["gw6"] != "" && (seen["ip6"] == "" || seen["ip6"] == "dhcp" || seen["ip6"] == "auto") {
		return "gateway specified without specifying an IPv6 address"
	}
	return ""
}

// validPublicKeys is ssh-keygen -l on each non-empty line: a key type, then
// base64 whose first field names the same type.
func validPublicKeys(keys string) bool {
	for _, line := range strings.Split(keys, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return false
		}
		blob, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(blob) < 4 {
			return false
		}
		n := binary.BigEndian.Uint32(blob)
		if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != f[0] {
			return false
		}
	}
	return true
}
