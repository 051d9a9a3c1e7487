package tools

import (
	"fmt"
	"math"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// Usage is an amount used out of a total, in bytes and in words, so a model never
// has to convert units itself.
type Usage struct {
	UsedBytes   int64   `json:"used_bytes" jsonschema:"bytes in use"`
	TotalBytes  int64   `json:"total_bytes" jsonschema:"capacity in bytes"`
	UsedPercent float64 `json:"used_percent" jsonschema:"used/total in percent (0-100), one decimal"`
	Used        string  `json:"used" jsonschema:"used, human readable (binary units, e.g. 3.2 GiB)"`
	Total       string  `json:"total" jsonschema:"capacity, human readable (binary units)"`
}

func usage(used, total int64) Usage {
	return Usage{UsedBytes: used, TotalBytes: total, UsedPercent: Percent(used, total), Used: humanBytes(used), Total: humanBytes(total)}
}

// DiskUse is a guest's disk (or any disk in a list of resources): its size,
// and how much of it is used when Proxmox knows. PVE reports 0 used for every
// VM (it does not look into the guest's file systems) and for containers that
// are not running; as "0 B, 0 %" a model reads that as an empty disk, so the
// use is then left out and Used says why.
type DiskUse struct {
	UsedKnown   bool     `json:"used_known" jsonschema:"false when Proxmox does not report the use; used_bytes and used_percent are then left out"`
	UsedBytes   *int64   `json:"used_bytes,omitempty" jsonschema:"bytes in use; left out when unknown"`
	TotalBytes  int64    `json:"total_bytes" jsonschema:"size in bytes"`
	UsedPercent *float64 `json:"used_percent,omitempty" jsonschema:"used/total in percent (0-100), one decimal; left out when unknown"`
	Used        string   `json:"used" jsonschema:"used, human readable (binary units), or 'unknown: …' saying why"`
	Total       string   `json:"total" jsonschema:"size, human readable (binary units)"`
}

func knownDisk(used, total int64) DiskUse {
	u := usage(used, total)
	return DiskUse{UsedKnown: true, UsedBytes: &u.UsedBytes, TotalBytes: total, UsedPercent: &u.UsedPercent, Used: u.Used, Total: u.Total}
}

// guestDisk reads PVE's disk figures of a guest of kind qemu or lxc; other
// kinds (node, storage) always report their use.
func guestDisk(kind, status string, used, total int64) DiskUse {
	if used > 0 {
		return knownDisk(used, total)
	}
	why := ""
	switch {
	case kind != "qemu" && kind != "lxc":
		if total > 0 {
			return knownDisk(used, total)
		}
		// An offline node, an SDN zone: nothing measured, not an empty disk.
		why = "Proxmox VE reports no disk figures for it"
		if status != "" {
			why += " (" + status + ")"
		}
	case kind == "qemu":
		why = "Proxmox VE does not report how much of a VM's disk is used, only its size; look inside the guest (e.g. df -h)"
	case status == "running":
		return knownDisk(used, total)
	default:
		why = fmt.Sprintf("the container is %s, and Proxmox VE measures a container's disk use only while it runs", orWord(status, "in an unknown state"))
	}
	return DiskUse{TotalBytes: total, Total: humanBytes(total), Used: "unknown: " + why}
}

func orWord(s, otherwise string) string {
	if s == "" || s == "unknown" {
		return otherwise
	}
	return s
}

// Percent is part/whole in percent, rounded to one decimal (0 when whole is 0).
// It is exported so the console's cluster watcher shows the numbers the tools
// report, not ones a tenth off.
func Percent(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return round1(float64(part) / float64(whole) * 100)
}

// FractionPercent turns a fraction as Proxmox reports CPU use and I/O wait
// (0.2536) into percent rounded to one decimal (25.4), as the tools report them.
func FractionPercent(fraction float64) float64 { return round1(fraction * 100) }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// humanBytes formats bytes in binary units, as Proxmox's GUI does.
func humanBytes(b int64) string {
	if b < 1024 {
		return fmt.Sprintf("%d B", b)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(b)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// HumanDuration formats seconds as a person reads them: "3d 4h 5m", "10m 0s".
func HumanDuration(seconds int64) string {
	if seconds <= 0 {
		return "0s"
	}
	d := time.Duration(seconds) * time.Second
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	h := int64(d / time.Hour)
	d -= time.Duration(h) * time.Hour
	m := int64(d / time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, seconds%60)
	}
	return fmt.Sprintf("%ds", seconds)
}

func unixTime(sec int64) string {
	if sec <= 0 {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

// Argument checks shared by every tool (ARCHITECTURE.md, dispatch steps 3-4); the rules
// themselves are pveid's.

func checkNode(node string) error {
	if !pveid.ValidNodeName(node) {
		return inputErrorf("node %q is not a node name: use letters, digits and '-' (1-%d characters)", node, pveid.MaxNodeNameLen)
	}
	return nil
}

// checkOptionalNode is checkNode for filters, where an empty node means all nodes.
func checkOptionalNode(node string) error {
	if node == "" {
		return nil
	}
	return checkNode(node)
}

func checkVMID(vmid int) error {
	if !pveid.ValidVMID(vmid) {
		return inputErrorf("vmid %d is out of range: Proxmox VMIDs are %d..%d", vmid, pveid.MinVMID, pveid.MaxVMID)
	}
	return nil
}

// Schema refinements used by adjust funcs.
func nodeSchema(s *jsonschema.Schema) {
	s.Pattern = pveid.NodeNamePattern
	s.MaxLength = ptr(pveid.MaxNodeNameLen)
}
func vmidSchema(s *jsonschema.Schema) {
	s.Minimum = ptr(float64(pveid.MinVMID))
	s.Maximum = ptr(float64(pveid.MaxVMID))
}
func rangeSchema(s *jsonschema.Schema, lo, hi float64) { s.Minimum = ptr(lo); s.Maximum = ptr(hi) }
func enumSchema(s *jsonschema.Schema, values ...string) {
	for _, v := range values {
		s.Enum = append(s.Enum, v)
	}
}
