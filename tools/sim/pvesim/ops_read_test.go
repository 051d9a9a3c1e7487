package pvesim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

func (h *harness) readData(path string, params url.Values, into any) reply {
	h.t.Helper()
	r := h.get(path, params)
	if r.status == 200 {
		if err := json.Unmarshal(r.env.Data, into); err != nil {
			h.t.Fatalf("GET %s: data %s: %v", path, r.env.Data, err)
		}
	}
	return r
}

type rrdRowJSON map[string]float64

func (h *harness) readRRD(path, timeframe, cf string) []rrdRowJSON {
	h.t.Helper()
	var rows []rrdRowJSON
	params := url.Values{"timeframe": {timeframe}}
	if cf != "" {
		params.Set("cf", cf)
	}
	if r := h.readData(path, params, &rows); r.status != 200 {
		h.t.Fatalf("GET %s %s = %d %s", path, timeframe, r.status, r.body)
	}
	return rows
}

// A graph ends where the live status is: the newest row is the one going on,
// and its MAX holds at least what the status shows now.
func TestRRDAgreesWithLiveStatus(t *testing.T) {
	h := newHarness(t) // its clock stands on a whole hour: hour, day and week rows end now
	now := h.clock.Now().Unix()
	for _, c := range []struct {
		rrd, status, mem string
	}{
		{"/nodes/pve/qemu/101/rrddata", "/nodes/pve/qemu/101/status/current", "mem"},
		{"/nodes/pve/lxc/201/rrddata", "/nodes/pve/lxc/201/status/current", "mem"},
		{"/nodes/pve/rrddata", "/nodes/pve/status", "memused"},
	} {
		var st map[string]any
		h.readData(c.status, nil, &st)
		liveCPU := st["cpu"].(float64)
		var liveMem float64
		if m, ok := st["memory"].(map[string]any); ok {
			liveMem = m["used"].(float64)
		} else {
			liveMem = st["mem"].(float64)
		}
		for tf, step := range rrdSteps {
			if tf == "decade" && !strings.HasSuffix(c.rrd, "/nodes/pve/rrddata") {
				continue
			}
			rows := h.readRRD(c.rrd, tf, "MAX")
			avg := h.readRRD(c.rrd, tf, "")
			if len(rows) != rrdRows || len(avg) != rrdRows {
				t.Fatalf("%s %s: %d rows, want %d", c.rrd, tf, len(rows), rrdRows)
			}
			last := rows[len(rows)-1]
			if int64(last["time"]) > now || int64(last["time"]) <= now-int64(step/time.Second) {
				t.Errorf("%s %s: newest row at %v, want within a step before %d", c.rrd, tf, last["time"], now)
			}
			for i := 1; i < len(rows); i++ {
				if d := rows[i]["time"] - rows[i-1]["time"]; d != step.Seconds() {
					t.Fatalf("%s %s: rows %v apart, want %v", c.rrd, tf, d, step.Seconds())
				}
			}
			// When the clock stands on a row's end, that row's last moment is
			// the present.
			if now%int64(step/time.Second) == 0 && (last["cpu"] < liveCPU || last[c.mem] < liveMem) {
				t.Errorf("%s %s: newest MAX row cpu %v mem %v, below the live %v and %v", c.rrd, tf, last["cpu"], last[c.mem], liveCPU, liveMem)
			}
			for i := range rows {
				if _, ok := rows[i]["cpu"]; ok && avg[i]["cpu"] > rows[i]["cpu"] {
					t.Fatalf("%s %s row %d: AVERAGE cpu %v above MAX %v", c.rrd, tf, i, avg[i]["cpu"], rows[i]["cpu"])
				}
			}
		}
	}
}

func TestRRDStoppedGuestsAndOldRows(t *testing.T) {
	h := newHarness(t)
	for _, row := range h.readRRD("/nodes/agent/qemu/104/rrddata", "day", "MAX") {
		if row["cpu"] != 0 || row["mem"] != 0 || row["netin"] != 0 || row["maxmem"] != float64(8*gib) {
			t.Fatalf("stopped VM 104: row %v, want no use and its size", row)
		}
	}
	rows := h.readRRD("/nodes/pve/rrddata", "year", "")
	missing := 0
	for _, row := range rows {
		if len(row) == 1 {
			missing++
		} else if missing == 0 || row["memtotal"] != float64(64*gib) {
			t.Fatalf("year row %v: older rows must carry only their time, newer ones the values", row)
		}
	}
	// 70 weeks back, the history covers the last 180 days.
	if missing < 40 || missing > 50 {
		t.Errorf("%d rows of 70 without data, want those older than %v", missing, rrdHistory)
	}
	// web01 ran for the last 12 days only: a month shows it stopped before.
	month := h.readRRD("/nodes/pve/qemu/101/rrddata", "month", "")
	if month[0]["cpu"] != 0 || month[len(month)-1]["cpu"] == 0 {
		t.Errorf("web01's month: first row cpu %v, last %v; want none before it started, some now", month[0]["cpu"], month[len(month)-1]["cpu"])
	}
}

func TestGuestAgentAnswers(t *testing.T) {
	h := newHarness(t)
	var ifaces struct {
		Result []struct {
			Name        string `json:"name"`
			IPAddresses []struct {
				Address string `json:"ip-address"`
			} `json:"ip-addresses"`
		} `json:"result"`
	}
	h.readData("/nodes/pve/qemu/101/agent/network-get-interfaces", nil, &ifaces)
	if len(ifaces.Result) != 2 || ifaces.Result[1].IPAddresses[0].Address != "10.0.1.101" {
		t.Errorf("web01's interfaces = %+v, want lo and ens18 with 10.0.1.101", ifaces.Result)
	}
	for _, c := range []struct {
		path, msg string
	}{
		{"/nodes/home/qemu/100/agent/get-host-name", "QEMU guest agent is not running"},
		{"/nodes/agent/qemu/104/agent/get-osinfo", "VM 104 is not running"},
		{"/nodes/pve/qemu/104/agent/get-osinfo", "Configuration file 'nodes/pve/qemu-server/104.conf' does not exist"},
	} {
		if r := h.get(c.path, nil); r.status != 500 || r.reason != c.msg {
			t.Errorf("GET %s = %d %q, want 500 %q", c.path, r.status, r.reason, c.msg)
		}
	}
	if err := h.sim.SetGuestStatus(104, "running"); err != nil {
		t.Fatal(err)
	}
	var host struct {
		Result map[string]string `json:"result"`
	}
	if r := h.readData("/nodes/agent/qemu/104/agent/get-host-name", nil, &host); r.status != 200 || host.Result["host-name"] != "win11" {
		t.Errorf("started VM 104's host name = %d %s", r.status, r.body)
	}

	var cts []map[string]any
	h.readData("/nodes/pve/lxc/201/interfaces", nil, &cts)
	if len(cts) != 2 || cts[1]["name"] != "eth0" || cts[1]["inet"] != "10.0.1.201/24" {
		t.Errorf("nginx-proxy's interfaces = %v", cts)
	}
	if r := h.get("/nodes/agent/lxc/203/interfaces", nil); r.status != 200 || string(r.body) != `{"data":null}` {
		t.Errorf("stopped container's interfaces = %d %s, want PVE's null", r.status, r.body)
	}
}

func TestHAAndReplicationFollowTheCluster(t *testing.T) {
	h := newHarness(t)
	status := func() map[string]map[string]any {
		var rows []map[string]any
		h.readData("/cluster/ha/status/current", nil, &rows)
		out := map[string]map[string]any{}
		for _, r := range rows {
			out[r["id"].(string)] = r
		}
		return out
	}
	st := status()
	if st["service:vm:101"]["status"] != "started" || st["master"]["node"] != "pve" || st["quorum"]["quorate"] != 1.0 {
		t.Errorf("HA status = %v", st)
	}
	if err := h.sim.SetGuestStatus(102, "stopped"); err != nil {
		t.Fatal(err)
	}
	h.sim.SetNodeOffline("pve", true)
	st = status()
	if st["service:vm:101"]["status"] != "fence" || !strings.Contains(st["lrm:pve"]["status"].(string), "dead") ||
		st["master"]["node"] != "home" || st["service:vm:102"]["request_state"] != "stopped" {
		t.Errorf("HA status with pve down = %v", st)
	}
	var res []map[string]any
	h.readData("/cluster/ha/resources", url.Values{"type": {"ct"}}, &res)
	if len(res) != 0 {
		t.Errorf("HA resources of type ct = %v, want none", res)
	}

	var jobs []map[string]any
	h.readData("/cluster/replication", nil, &jobs)
	if len(jobs) != 1 || jobs[0]["id"] != "102-0" || jobs[0]["source"] != "pve" || jobs[0]["target"] != "home" {
		t.Errorf("replication jobs = %v", jobs)
	}
	h.sim.SetNodeOffline("pve", false)
	for node, want := range map[string]int{"pve": 1, "home": 0} {
		var st []map[string]any
		h.readData("/nodes/"+node+"/replication", nil, &st)
		if len(st) != want || (want == 1 && !strings.Contains(st[0]["error"].(string), "missing replicate feature")) {
			t.Errorf("replication state on %s = %v, want %d job(s) failing for want of ZFS", node, st, want)
		}
	}
}

func TestUpdatesAndCertificates(t *testing.T) {
	h := newHarness(t)
	for node, want := range map[string]int{"home": 5, "agent1": 2, "pve": 0, "agent": 0} {
		var ups []map[string]any
		h.readData("/nodes/"+node+"/apt/update", nil, &ups)
		if len(ups) != want {
			t.Errorf("%s has %d updates pending, want %d", node, len(ups), want)
		}
	}
	created := h.clock.Now()
	for node, left := range map[string]time.Duration{"agent": agentCertLeft, "pve": certLife - 60*24*time.Hour} {
		var certs []map[string]any
		h.readData("/nodes/"+node+"/certificates/info", nil, &certs)
		if len(certs) != 2 || certs[1]["filename"] != "pve-ssl.pem" ||
			int64(certs[1]["notafter"].(float64)) != created.Add(left).Unix() {
			t.Errorf("%s's certificates = %v, want pve-ssl.pem valid for %v more", node, certs, left)
		}
	}
}
