package pvesim

// POST /nodes/{node}/storage/{storage}/download-url. The simulator never
// fetches anything: a "download" task prints what wget would and adds a
// volume whose size follows from the URL.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

var downloadParams = map[string]param{
	"url": {typ: "string", required: true}, "filename": {typ: "string", required: true},
	"content":             {typ: "string", required: true, enum: []string{"iso", "vztmpl", "import"}},
	"checksum":            str,
	"checksum-algorithm":  {typ: "string", enum: []string{"md5", "sha1", "sha224", "sha256", "sha384", "sha512"}},
	"compression":         str,
	"verify-certificates": flag,
}

var (
	isoExtRE    = regexp.MustCompile(`(?i)[^/]+\.(?:iso|img)$`)
	vztmplExtRE = regexp.MustCompile(`(?i)[^/]+\.(tar|tar\.(gz|xz|zst|bz2))$`)
	unsafeChar  = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)
	urlRE       = regexp.MustCompile(`^https?://`)
)

func (s *Sim) postDownloadURL(c *call) response {
	n := s.node(c.vars["node"])
	name := c.vars["storage"]
	p := c.params
	errs := map[string]string{}
	if !urlRE.MatchString(p["url"]) {
		errs["url"] = "value does not match the regex pattern"
	}
	if len(p["filename"]) > 255 {
		errs["filename"] = "value may only be 255 characters long"
	}
	_, sum := p["checksum"]
	_, alg := p["checksum-algorithm"]
	if sum != alg {
		errs["checksum"] = "'checksum' and 'checksum-algorithm' go together"
	}
	if len(errs) > 0 {
		return badRequest(errs)
	}
	// The rest of the "and": Sys.Audit and Sys.Modify on /, or
	// Sys.AccessNetwork on the node.
	if !(s.held(c.user, "/", "Sys.Audit") && s.held(c.user, "/", "Sys.Modify")) && !s.held(c.user, "/nodes/"+n.name, "Sys.AccessNetwork") {
		return permDenied("/nodes/"+n.name, "Sys.AccessNetwork")
	}
	st := s.storage(name)
	if st == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' does not exist", name))
	}
	if st.typ != "dir" && st.typ != "nfs" {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("can't upload to storage type '%s', not a file based storage!", st.typ))
	}
	content := p["content"]
	if !hasContent(st.content, content) {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' is not configured for content-type '%s'", name, content))
	}
	filename := unsafeChar.ReplaceAllString(p["filename"], "_")
	var dir, format string
	switch content {
	case "iso":
		if !isoExtRE.MatchString(filename) {
			return badRequest(map[string]string{"filename": "wrong file extension"})
		}
		dir, format = "template/iso", "iso"
	case "vztmpl":
		m := vztmplExtRE.FindStringSubmatch(filename)
		if m == nil {
			return badRequest(map[string]string{"filename": "wrong file extension"})
		}
		dir = "template/cache"
		format = map[string]string{"tar": "tar", "tar.gz": "tgz", "tar.xz": "txz", "tar.zst": "tzst", "tar.bz2": "tbz2"}[strings.ToLower(m[1])]
	default:
		return errorResponse(http.StatusInternalServerError, "pvesim: downloads for import are not simulated")
	}
	base := "/var/lib/vz"
	if name != "local" {
		base = "/mnt/pve/" + name
	}
	dest := base + "/" + dir + "/" + filename
	volid := name + ":" + content + "/" + filename
	url := p["url"]
	size := downloadSize(url, content)
	startLog := []string{"downloading " + url + " to " + dest,
		fmt.Sprintf("Length: %d (%dM) [application/octet-stream]", size, size/mib),
		fmt.Sprintf("Saving to: '%s.tmp.%d'", dest, s.nextPID+0x1F3)}
	var progress []string
	for _, pct := range []int{8, 23, 41, 60, 79, 96, 100} {
		kib := size * int64(pct) / 100 / 1024
		progress = append(progress, fmt.Sprintf("%9dK ........ ........ ........ ........ ........ ........ %3d%% %5.1fM %ds", kib, pct, 96.3+float64(pct)/10, max(0, 6-pct/17)))
	}
	checksum := strings.ToLower(p["checksum"])
	compression := p["compression"]
	t := s.startLongTask(n, "download", filename, c.user, s.scale(2), startLog, progress, func() (string, []string) {
		for _, v := range s.volumes {
			if v.volid == volid && (st.shared || v.node == n.name) {
				return fmt.Sprintf("refusing to override existing file '%s'", dest), nil
			}
		}
		if compression != "" && content != "iso" {
			return "decompression not supported for " + content, nil
		}
		var log []string
		if checksum != "" {
			// The simulator cannot know a file it never fetched; a checksum of
			// zeros stands for one that does not match.
			if strings.Trim(checksum, "0") == "" {
				got := fmt.Sprintf("%x", sha256.Sum256([]byte(url)))[:len(checksum)]
				return fmt.Sprintf("checksum mismatch: got '%s' != expect '%s'", got, checksum), []string{"calculating checksum..."}
			}
			log = append(log, "calculating checksum...OK, checksum verified")
		}
		v := volume{storage: name, volid: volid, content: content, format: format, size: size, ctime: s.now().Unix()}
		if !st.shared {
			v.node = n.name
		}
		s.volumes = append(s.volumes, v)
		return "OK", append(log, fmt.Sprintf("download of '%s' to '%s' finished", url, dest))
	})
	return taskResponse(t)
}

// downloadSize is the size of what a URL would give: deterministic, and of a
// plausible size for its content.
func downloadSize(url, content string) int64 {
	sum := sha256.Sum256([]byte(url))
	r := int64(binary.BigEndian.Uint32(sum[:4]))
	if content == "vztmpl" {
		return 60*mib + r%(300*mib)
	}
	return 100*mib + r%(1400*mib)
}
