package tools

import "testing"

func TestParseSensors(t *testing.T) {
	out := `coretemp-isa-0000
Adapter: ISA adapter
Package id 0:  +52.0°C  (high = +80.0°C, crit = +100.0°C)
Core 0:        +49.5°C  (high = +80.0°C, crit = +100.0°C)
nvme-pci-0100
Composite:    -3.5°C  (low  = -273.1°C, high = +84.8°C)
fan1:        1200 RPM
in0:          +1.02 V
`
	got := parseSensors(out)
	want := []Temperature{{"Package id 0", "sensors", 52}, {"Core 0", "sensors", 49.5}, {"Composite", "sensors", -3.5}}
	if len(got) != len(want) {
		t.Fatalf("parsed %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSinceRule(t *testing.T) {
	for _, c := range []struct {
		since string
		ok    bool
	}{{"1 hour ago", true}, {"2 days ago", true}, {"today", true}, {"2026-11-26 08:00:00", true}, {"yesterday; reboot", false}, {"-1h", false}} {
		if sinceRE.MatchString(c.since) != c.ok {
			t.Errorf("since %q accepted=%t", c.since, !c.ok)
		}
	}
}
