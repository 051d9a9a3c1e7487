package tools

import (
	"net"
	"strings"
	"testing"
)

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

func TestParseWakeOnLAN(t *testing.T) {
	w, err := ParseWakeOnLAN("pve=52:54:00:12:34:02, home=aa-bb-cc-dd-ee-ff", "192.0.2.255:9")
	if err != nil || len(w.macs) != 2 || w.broadcast.Port != 9 {
		t.Fatalf("%+v %v", w, err)
	}
	if w, err := ParseWakeOnLAN("", "x"); w != nil || err != nil {
		t.Fatal("an empty list means not configured")
	}
	_, err = ParseWakeOnLAN("pve=nope,bad name=52:54:00:12:34:02", "no-port")
	for _, want := range []string{"nope", "bad name", "no-port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestMagicPacket(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:02")
	p := MagicPacket(mac)
	if len(p) != 102 || string(p[:6]) != "\xff\xff\xff\xff\xff\xff" || string(p[96:]) != string(mac) {
		t.Fatalf("packet % x", p)
	}
}
