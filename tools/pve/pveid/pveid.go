// Package pveid holds the shapes of Proxmox VE's identifiers: node names, guest
// IDs (VMIDs) and task IDs (UPIDs). Every package that checks one asks here, so a
// rule cannot drift between the tools, the safety layer, the web console and the
// configuration. It is a leaf: standard library only, no I/O.
package pveid

import (
	"regexp"
	"strings"
)

// NodeNamePattern is a node name as Jarvis accepts it, for JSON schemas; it
// allows MaxNodeNameLen characters.
const (
	NodeNamePattern = `^[a-zA-Z0-9-]{1,63}$`
	MaxNodeNameLen  = 63
)

var nodeNameRE = regexp.MustCompile(NodeNamePattern)

// ValidNodeName reports whether s is a node name: letters, digits and '-', 1-63 characters.
func ValidNodeName(s string) bool { return nodeNameRE.MatchString(s) }

// MinVMID and MaxVMID bound the numbers Proxmox accepts as guest IDs;
// MaxVMIDDigits is MaxVMID's length, so a longer run of digits is no VMID.
const (
	MinVMID       = 100
	MaxVMID       = 999999999
	MaxVMIDDigits = 9
)

// ValidVMID reports whether id is in MinVMID..MaxVMID.
func ValidVMID(id int) bool { return id >= MinVMID && id <= MaxVMID }

// UPIDPattern is a task id, UPID:node:pid:pstart:starttime:type:id:user:, for
// JSON schemas (pstart may grow to 9 hex digits). No field holds a ':'.
const UPIDPattern = `^UPID:[a-zA-Z0-9-]+:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$`

var upidRE = regexp.MustCompile(UPIDPattern)

// ValidUPID reports whether s is a task id. Like PVE::Tools::upid_decode it also
// wants the node to begin and end with a letter or digit, as a host name does.
func ValidUPID(s string) bool {
	if !upidRE.MatchString(s) {
		return false
	}
	node, _, _ := strings.Cut(strings.TrimPrefix(s, "UPID:"), ":")
	return !strings.HasPrefix(node, "-") && !strings.HasSuffix(node, "-")
}
