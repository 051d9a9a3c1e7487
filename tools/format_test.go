package tools

import (
	"strings"
	"testing"
)

func TestHumanBytes(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{64 << 30, "64.0 GiB"}, {3725 << 30, "3.6 TiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := humanBytes(c.in); got != c.want {
			t.Errorf("humanBytes(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0s"}, {-5, "0s"}, {59, "59s"}, {61, "1m 1s"}, {3600, "1h 0m"}, {86400*3 + 3600*4 + 60*5, "3d 4h 5m"},
	} {
		if got := HumanDuration(c.in); got != c.want {
			t.Errorf("HumanDuration(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUsage(t *testing.T) {
	u := usage(512<<20, 2<<30)
	if u.UsedPercent != 25 || u.Used != "512.0 MiB" || u.Total != "2.0 GiB" {
		t.Errorf("usage = %+v", u)
	}
	if z := usage(5, 0); z.UsedPercent != 0 {
		t.Errorf("usage of nothing = %+v", z)
	}
}

// Percentages round to one decimal (25.36 → 25.4, not truncated to 25.3), the
// same whether a tool or the cluster watcher computes them.
func TestPercentRounds(t *testing.T) {
	for _, c := range []struct {
		part, whole int64
		want        float64
	}{{2536, 10000, 25.4}, {2534, 10000, 25.3}, {1, 3, 33.3}, {2, 3, 66.7}, {5, 0, 0}, {5, -1, 0}} {
		if got := Percent(c.part, c.whole); got != c.want {
			t.Errorf("Percent(%d, %d) = %v, want %v", c.part, c.whole, got, c.want)
		}
		if got := usage(c.part, c.whole).UsedPercent; got != c.want {
			t.Errorf("usage(%d, %d).UsedPercent = %v, want %v", c.part, c.whole, got, c.want)
		}
	}
	for _, c := range []struct{ in, want float64 }{{0.2536, 25.4}, {0.2534, 25.3}, {0.99999, 100}, {0, 0}} {
		if got := FractionPercent(c.in); got != c.want {
			t.Errorf("FractionPercent(%v) = %v, want %v", c.in, got, c.want)
		}
		if got := FractionPercent(c.in); got != round1(c.in*100) {
			t.Errorf("FractionPercent(%v) = %v, the tools say %v", c.in, got, round1(c.in*100))
		}
	}
}

func TestArgumentRules(t *testing.T) {
	for _, c := range []struct {
		node string
		ok   bool
	}{{"pve", true}, {"agent1", true}, {"pve-2", true}, {"", false}, {"a b", false}, {"pve;reboot", false}, {strings.Repeat("a", 64), false}} {
		if err := checkNode(c.node); (err == nil) != c.ok {
			t.Errorf("checkNode(%q) = %v", c.node, err)
		}
	}
	for _, c := range []struct {
		vmid int
		ok   bool
	}{{100, true}, {999999999, true}, {99, false}, {1000000000, false}, {-1, false}} {
		if err := checkVMID(c.vmid); (err == nil) != c.ok {
			t.Errorf("checkVMID(%d) = %v", c.vmid, err)
		}
	}
	// The messages name the rules' bounds, as they always have.
	if err := checkVMID(99); err == nil || !strings.Contains(err.Error(), "100..999999999") {
		t.Errorf("checkVMID(99) = %v, want the range 100..999999999", err)
	}
	if err := checkNode("a b"); err == nil || !strings.Contains(err.Error(), "(1-63 characters)") {
		t.Errorf(`checkNode("a b") = %v, want the length 1-63`, err)
	}
}

// A disk use PVE does not measure is "unknown", never 0 B / 0 %.
func TestGuestDisk(t *testing.T) {
	for _, c := range []struct {
		kind, status string
		used, total  int64
		known        bool
		says         string
	}{
		{"qemu", "running", 0, 32 << 30, false, "VM's disk"},
		{"qemu", "stopped", 0, 32 << 30, false, "VM's disk"},
		{"qemu", "running", 5 << 30, 32 << 30, true, "5.0 GiB"}, // should PVE ever report it
		{"lxc", "running", 3 << 30, 8 << 30, true, "3.0 GiB"},
		{"lxc", "running", 0, 8 << 30, true, "0 B"}, // measured: empty
		{"lxc", "stopped", 0, 8 << 30, false, "container is stopped"},
		{"lxc", "unknown", 0, 8 << 30, false, "unknown state"},
		{"node", "online", 20 << 30, 94 << 30, true, "20.0 GiB"},
		{"node", "offline", 0, 0, false, "offline"},
		{"storage", "available", 0, 100 << 30, true, "0 B"},
	} {
		d := guestDisk(c.kind, c.status, c.used, c.total)
		if d.UsedKnown != c.known || (d.UsedBytes != nil) != c.known || (d.UsedPercent != nil) != c.known {
			t.Errorf("%s %s %d/%d: %+v, want known=%t", c.kind, c.status, c.used, c.total, d, c.known)
		}
		if !strings.Contains(d.Used, c.says) || d.TotalBytes != c.total {
			t.Errorf("%s %s %d/%d: used %q, want it to say %q", c.kind, c.status, c.used, c.total, d.Used, c.says)
		}
		if !c.known && !strings.HasPrefix(d.Used, "unknown: ") {
			t.Errorf("%s %s: %q does not start with unknown", c.kind, c.status, d.Used)
		}
	}
}
