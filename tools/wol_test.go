package tools

import (
	"net"
	"strings"
	"testing"
)

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
