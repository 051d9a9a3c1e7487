package tools

// The weekly operations that create something new and change nothing that
// exists, YELLOW: a clone (ops_create_clone.go), a backup now and a restore
// into a new VMID (ops_create_backup.go), a download into a storage
// (ops_create_download.go), a guest's notes and tags (ops_create_notes.go).
// A stop-mode backup, and a restore over an existing guest (or one started
// beside its running original), are RED: those two tools decide their tier
// per call. This file holds what they share.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

func opsCreateTools() []*Tool {
	return []*Tool{cloneGuest(), createBackup(), restoreBackup(), downloadToStorage(), setGuestNotesTags()}
}

var (
	setTags = priv("/vms/{vmid}", "to set tags and notes (PVE checks VM.Config.Options for both, and for the jarvis-created tag on what Jarvis creates)", "VM.Config.Options")
	// allocateSpace is Datastore.AllocateSpace where new disks or archives go.
	allocateSpace = func(what string) Privilege {
		return priv("/storage/{storage}", what, "Datastore.AllocateSpace")
	}
)

// opsCreateAccess is the Proxmox privileges of these tools (see privileges.go).
var opsCreateAccess = map[string]toolAccess{
	"clone_guest": {"clones", []Privilege{seeGuests, readGuest,
		priv("/vms/{vmid}", "to clone a guest or template (on the source)", "VM.Clone"),
		priv("/vms/{vmid}", "to create the clone (on its new VMID)", "VM.Allocate"),
		allocateSpace("to create the clone's disks (PVE checks the target storage, or the source's)"),
		setTags,
		priv("/vms/{vmid}", "to set a cloned VM's cloud-init user, SSH key and IP (either privilege; only with those arguments)",
			"VM.Config.Cloudinit", "VM.Config.Network")}},
	"create_backup": {"backups", []Privilege{seeGuests,
		priv("/vms/{vmid}", "to back up a guest", "VM.Backup"),
		allocateSpace("to write a backup to a storage, and to see it there afterwards")}},
	"restore_backup": {"backups", []Privilege{seeGuests, readGuest, seeStorage, backupSpace, backupGuest,
		priv("/vms/{vmid}", "to restore into a new VMID (over an existing guest, VM.Backup on it is enough)", "VM.Allocate"),
		allocateSpace("to restore disks onto a storage"),
		priv("/vms/{vmid}", "only with start: to start the restored guest", "VM.PowerMgmt"),
		setTags}},
	"download_to_storage": {"downloads", []Privilege{seeStorage,
		priv("/storage/{storage}", "to download ISO images and container templates into a storage", "Datastore.AllocateTemplate"),
		{Path: "/nodes/{node}", AnyOf: []string{"Sys.AccessNetwork"}, Unless: &Privilege{Path: "/", AnyOf: []string{"Sys.Modify"}},
			For: "to let a node fetch a URL: PVE asks for it on the node, or for Sys.Audit and Sys.Modify on /"}}},
	"set_guest_notes_tags": {"notes and tags", []Privilege{seeGuests, readGuest, setTags}},
}

// createdTag marks in Proxmox a guest Jarvis created (clone_guest,
// restore_backup into a new VMID). delete_guest needs it and the store's
// record of the creating call, both; set_guest_notes_tags never adds or
// removes it.
const createdTag = "jarvis-created"

// createdIDPrefix starts the second tag on a guest Jarvis created: a random id
// that the store keeps with its record. Proxmox copies tags into clones and
// hands freed VMIDs out again, so the plain tag and a VMID alone could make a
// guest a person made look like Jarvis's; the id cannot.
const createdIDPrefix = "jarvis-id-"

// newCreatedID is a fresh id tag for a guest Jarvis creates.
func newCreatedID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("no randomness for a guest's id tag: %v", err))
	}
	return createdIDPrefix + hex.EncodeToString(b)
}

// createdMarks reads Jarvis's marks from a guest's tags: whether it carries
// createdTag, and its id tag ("" when it has none, or more than one).
func createdMarks(tags []string) (tagged bool, id string) {
	n := 0
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == createdTag:
			tagged = true
		case strings.HasPrefix(t, createdIDPrefix):
			id = t
			n++
		}
	}
	if n != 1 {
		id = ""
	}
	return tagged, id
}

// isJarvisMark reports whether a tag is one of the marks only Jarvis sets.
func isJarvisMark(tag string) bool {
	tag = strings.ToLower(tag)
	return tag == createdTag || strings.HasPrefix(tag, createdIDPrefix)
}

// ---- tags ----

// guestTagRE is a tag as Jarvis sets one: PVE's tag, lower case.
var guestTagRE = regexp.MustCompile(`^[a-z0-9_][a-z0-9_+.-]*$`)

// guestTags splits PVE's tag list ("prod;web", also ',' or ' ' separated).
func guestTags(list string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(list, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// tagList writes tags as PVE keeps them: unique, sorted, ';'-separated.
func tagList(tags []string) string {
	out := slices.Clone(tags)
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ";")
}

// tagsWords shows a tag list in a sentence: "[prod, web]", "no tags".
func tagsWords(tags []string) string {
	if len(tags) == 0 {
		return "no tags"
	}
	s := slices.Clone(tags)
	slices.Sort(s)
	return "[" + strings.Join(s, ", ") + "]"
}

// ---- the mark on what Jarvis creates ----

// markCreated adds createdTag and a new id tag to a guest's tags (replacing
// an id tag it inherited from what it was cloned or restored from), with
// extra (cloud-init settings) in the same write, on the guest's config as it
// is now. It answers the tags it set and the id.
func markCreated(ctx context.Context, env *Env, node, kind string, vmid int, extra url.Values) (tags, id string, err error) {
	cfg, err := env.PVE.GuestConfig(Fresh(ctx), node, kind, vmid)
	if err != nil {
		return "", "", fmt.Errorf("reading its config: %w", err)
	}
	id = newCreatedID()
	list := slices.DeleteFunc(guestTags(confText(cfg, "tags")), isJarvisMark)
	list = append(list, createdTag, id)
	set := url.Values{"tags": {tagList(list)}}
	for k, v := range extra {
		set[k] = v
	}
	if err := env.PVE.SetGuestMeta(ctx, node, kind, vmid, set, nil, confText(cfg, "digest")); err != nil {
		return "", "", err
	}
	return tagList(list), id, nil
}

// unmarkedError is a guest Jarvis created but could not tag as its own: the
// call failed, so no record is kept and delete_guest will refuse the guest.
type unmarkedError struct {
	msg  string
	upid string
	err  error
}

func (e *unmarkedError) Error() string    { return e.msg }
func (e *unmarkedError) Unwrap() error    { return e.err }
func (e *unmarkedError) TaskUPID() string { return e.upid }

// markError turns a failed markCreated into the call's outcome. The guest
// exists: the sentence names it, says what was not done, and what it means.
func markError(err error, noun, node, upid string, cloudInit bool) error {
	sends, not := "", ""
	if cloudInit {
		sends, not = " and sets its cloud-init settings", " (its cloud-init settings were not set either)"
	}
	check := fmt.Sprintf("Before retrying, check get_guest_config for %s on node %s: its tags should include %s", noun, node, createdTag)
	if pve.OutcomeUnknown(err) {
		return &OutcomeUnknownError{What: "tagging of " + noun + " as " + createdTag, UPID: upid, Cause: err,
			Why: fmt.Sprintf("%s was created (task %s ended OK), but the request that tags it %s%s got no usable answer, so it may or may not be tagged; Jarvis keeps no record of having created it, so delete_guest will refuse it",
				noun, upid, createdTag, sends),
			Check: check}
	}
	return &unmarkedError{upid: upid, err: err,
		msg: fmt.Sprintf("%s was created on node %s (task %s ended OK), but Jarvis could not tag it %s: %v%s. Jarvis does not count it as created by it, so delete_guest will refuse it; set the tag in Proxmox, or remove the guest there if it is not wanted",
			noun, node, upid, createdTag, err, not)}
}

// ---- reading what Proxmox says ----

// confText is a config value as text (PVE sends some numbers as strings).
func confText(cfg map[string]any, key string) string {
	switch v := cfg[key].(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprint(v)
	}
}

// onlineNodes reads which nodes are online (GET /nodes), with every node's
// name, sorted.
func onlineNodes(ctx context.Context, env *Env) (online map[string]bool, names []string, err error) {
	nodes, err := env.PVE.Nodes(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the cluster's nodes: %w", err)
	}
	online = map[string]bool{}
	for _, n := range nodes {
		names = append(names, n.Node)
		online[n.Node] = n.Status == "online"
	}
	slices.Sort(names)
	return online, names, nil
}

// needOnline refuses a node that is not a member or not online.
func needOnline(node string, online map[string]bool, names []string, role string) error {
	up, known := online[node]
	switch {
	case !known:
		return unknownNodeError(node, names)
	case !up:
		return inputErrorf("node %s (%s) is offline; nothing can be done there now", node, role)
	}
	return nil
}

// storageOnNode finds a storage a node can use (GET /nodes/{node}/storage).
func storageOnNode(ctx context.Context, env *Env, node, name string) (*pve.StorageEntry, []pve.StorageEntry, error) {
	list, err := env.PVE.NodeStorage(ctx, node)
	if err != nil {
		return nil, nil, nodeError(ctx, env, node, err)
	}
	for i := range list {
		if list[i].Storage == name {
			return &list[i], list, nil
		}
	}
	return nil, list, nil
}

// storageHolds reports whether a storage's content list ("images,rootdir") has want.
func storageHolds(content, want string) bool {
	return slices.Contains(strings.Split(strings.ReplaceAll(content, " ", ""), ","), want)
}

// storagesFor names the storages of a list that hold content, for messages.
func storagesFor(list []pve.StorageEntry, content string) string {
	var names []string
	for _, s := range list {
		if storageHolds(s.Content, content) && bool(s.Enabled) && bool(s.Active) {
			names = append(names, s.Storage)
		}
	}
	slices.Sort(names)
	return orWord(strings.Join(names, ", "), "none")
}

// vmidFree asks Proxmox whether a VMID is free (GET /cluster/nextid?vmid=):
// a guest the token cannot see still counts. A taken one is refused in
// Proxmox's words.
func vmidFree(ctx context.Context, env *Env, vmid int) error {
	_, err := env.PVE.NextID(Fresh(ctx), vmid)
	var apiErr *pve.APIError
	if errors.As(err, &apiErr) && apiErr.Status == 400 {
		why := apiErr.Errors["vmid"]
		if why == "" {
			why = apiErr.Message
		}
		return inputErrorf("VMID %d cannot be used: Proxmox says %q; choose another, or leave new_vmid out for the next free one", vmid, why)
	}
	if err != nil {
		return fmt.Errorf("checking that VMID %d is free: %w", vmid, err)
	}
	return nil
}

// ---- waiting with the task log's progress ----

// percentREs read how far a task has come from its log: vzdump ("INFO:  45%
// (…)"), a disk copy ("transferred … (45.00%)"), a restore ("progress 45%
// (…)"), wget ("… 45% 96.3M 2s").
var percentREs = []*regexp.Regexp{
	regexp.MustCompile(`^INFO:\s+(\d{1,3})% \(`),
	regexp.MustCompile(`transferred .* \((\d{1,3}(?:\.\d+)?)%\)`),
	regexp.MustCompile(`^progress (\d{1,3})% \(`),
	regexp.MustCompile(`\.\s+(\d{1,3})%\s+[\d.]+[KMG]?\s`),
}

func logPercent(line string) (float64, bool) {
	for _, re := range percentREs {
		if m := re.FindStringSubmatch(line); m != nil {
			var p float64
			if _, err := fmt.Sscan(m[1], &p); err == nil && p <= 100 {
				return p, true
			}
		}
	}
	return 0, false
}

// logProgress reports a task's progress as its log tells it, the last
// percentage printed, or else (until one is) as waitForTask does.
func logProgress(ctx context.Context, env *Env, upid, what string, progress Progress) Progress {
	id, err := pve.ParseUPID(upid)
	if err != nil {
		return progress
	}
	next, pct := 0, -1.0
	return func(msg string, done, total float64) {
		lines, err := env.PVE.TaskLog(ctx, id.Node, upid, next, 500)
		if err == nil && !(len(lines) == 1 && lines[0].T == "no content") {
			for _, l := range lines {
				next = max(next, int(l.N))
				if p, ok := logPercent(l.T); ok {
					pct = p
				}
			}
		}
		if pct >= 0 {
			progress(fmt.Sprintf("%s: %.0f%%", what, pct), pct, 100)
			return
		}
		progress(msg, done, total)
	}
}

// taskErrors adds the ERROR lines of a failed task's log to its error: PVE's
// exit status ("job errors") alone does not say what went wrong.
func taskErrors(ctx context.Context, env *Env, node, upid string, err error) error {
	var failed *taskFailedError
	if !errors.As(err, &failed) {
		return err
	}
	lines, lerr := env.PVE.TaskLog(ctx, node, upid, 0, 500)
	if lerr != nil {
		return err
	}
	var errs []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l.T, "ERROR: "); ok {
			errs = append(errs, rest)
		}
	}
	if len(errs) == 0 {
		return err
	}
	failed.msg += " (" + strings.Join(errs, "; ") + ")"
	return err
}

// withCheck replaces what an unknown outcome says to check before retrying.
func withCheck(err error, check string) error {
	var unk *OutcomeUnknownError
	if errors.As(err, &unk) {
		unk.Check = check
	}
	return err
}
