package tools

import (
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// rrdRows makes n rows a minute apart: cpu i/100 and mem i*1000 in row i,
// netin (i*10) in even rows only, and nothing at all in the rows before from.
func rrdRows(n, from int) []pve.RRDPoint {
	num := func(f float64) *pve.Num { v := pve.Num(f); return &v }
	rows := make([]pve.RRDPoint, n)
	for i := range rows {
		rows[i].Time = pve.Int(1_800_000_000 + 60*i)
		if i < from {
			continue
		}
		rows[i].CPU, rows[i].Mem, rows[i].MaxMem = num(float64(i)/100), num(float64(i*1000)), num(1e6)
		if i%2 == 0 {
			rows[i].NetIn = num(float64(i * 10))
		}
	}
	return rows
}

func TestDownsample(t *testing.T) {
	at := func(row int) string { return time.Unix(int64(1_800_000_000+60*row), 0).UTC().Format(time.RFC3339) }
	type point struct {
		last     int // row ending the span
		cpu      float64
		mem, net int64 // net -1: none in the span
	}
	for _, c := range []struct {
		name    string
		rows    []pve.RRDPoint
		points  int
		max     bool
		want    []point // spans checked, by position in the answer
		count   int
		summary MetricsSummary
	}{
		// 70 rows in 7 spans of 10; the first has no data and is left out.
		{"average", rrdRows(70, 10), 7, false, []point{{19, 14.5, 14500, 140}, {69, 64.5, 64500, 640}}, 6,
			MetricsSummary{CPUAvgPercent: 39.5, CPUMaxPercent: 69, MemMaxBytes: 69000}},
		{"max", rrdRows(70, 10), 7, true, []point{{19, 19, 19000, 180}, {69, 69, 69000, 680}}, 6,
			MetricsSummary{CPUAvgPercent: 39.5, CPUMaxPercent: 69, MemMaxBytes: 69000}},
		// 70 rows in 24 spans of 2 or 3 rows; spans 0-2 (rows 0-7) are empty,
		// span 3 (rows 8-10) has one row with data.
		{"uneven spans", rrdRows(70, 10), 24, false, []point{{10, 10, 10000, 100}, {69, 68, 68000, 680}}, 21,
			MetricsSummary{CPUAvgPercent: 39.5, CPUMaxPercent: 69, MemMaxBytes: 69000}},
		{"fewer rows than points", rrdRows(5, 0), 60, false, []point{{0, 0, 0, 0}, {4, 4, 4000, 40}}, 5,
			MetricsSummary{CPUAvgPercent: 2, CPUMaxPercent: 4, MemMaxBytes: 4000}},
		{"no rows", nil, 24, false, nil, 0, MetricsSummary{}},
		{"no data at all", rrdRows(70, 70), 24, false, nil, 0, MetricsSummary{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, sum := rrdDownsample(c.rows, c.points, c.max)
			if len(got) != c.count || sum != c.summary {
				t.Fatalf("%d points, summary %+v; want %d, %+v", len(got), sum, c.count, c.summary)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time <= got[i-1].Time {
					t.Fatalf("points out of order: %s after %s", got[i].Time, got[i-1].Time)
				}
			}
			for i, w := range c.want {
				p := got[0]
				if i > 0 {
					p = got[len(got)-1]
				}
				if p.Time != at(w.last) || p.CPUPercent == nil || *p.CPUPercent != w.cpu || *p.MemUsedBytes != w.mem ||
					*p.MemTotalBytes != 1e6 || (w.net >= 0) != (p.NetInBps != nil) || (p.NetInBps != nil && *p.NetInBps != w.net) {
					t.Errorf("point %d = %s cpu %v mem %v net %v; want %+v at %s", i, p.Time, shownValue(p.CPUPercent), shownValue(p.MemUsedBytes), shownValue(p.NetInBps), w, at(w.last))
				}
				if p.NetOutBps != nil || p.DiskReadBps != nil {
					t.Errorf("point %d has values PVE did not send: %+v", i, p)
				}
			}
		})
	}
}

func shownValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestGetMetricsHistory(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	for _, c := range []struct {
		args    map[string]any
		subject string
		points  int // exactly, or at most when negative
		check   func(p MetricsPoint) bool
	}{
		{map[string]any{"vmid": 101, "points": 12}, "VM 101 'web01' on node pve", 12, func(p MetricsPoint) bool {
			return p.CPUPercent != nil && *p.CPUPercent > 0 && *p.MemTotalBytes == 8<<30 && *p.NetInBps == 2303 && *p.DiskWriteBps == 8293
		}},
		{map[string]any{"vmid": 201, "timeframe": "week", "cf": "MAX"}, "container 201 'nginx-proxy' on node pve", 24, func(p MetricsPoint) bool {
			return *p.MemTotalBytes == 1<<30 && p.DiskReadBps != nil
		}},
		{map[string]any{"vmid": 104, "timeframe": "day"}, "VM 104 'win11' on node agent", 24, func(p MetricsPoint) bool {
			return *p.CPUPercent == 0 && *p.MemUsedBytes == 0 && *p.NetInBps == 0
		}},
		// Nodes have no disk I/O in their RRD.
		{map[string]any{"node": "pve", "timeframe": "day", "points": 60}, "node pve", 60, func(p MetricsPoint) bool {
			return *p.MemTotalBytes == 64<<30 && p.DiskReadBps == nil && p.DiskWriteBps == nil && *p.NetInBps > 1500
		}},
		// A year reaches back before the history began: those spans are left out.
		{map[string]any{"node": "agent", "timeframe": "year", "points": 10}, "node agent", -9, func(p MetricsPoint) bool {
			return p.CPUPercent != nil
		}},
	} {
		got, js := readInto[MetricsHistory](t, env, "get_metrics_history", c.args)
		if got.Subject != c.subject || (c.points > 0 && len(got.Points) != c.points) ||
			(c.points < 0 && (len(got.Points) == 0 || len(got.Points) > -c.points)) {
			t.Errorf("%v: subject %q, %d points: %s", c.args, got.Subject, len(got.Points), js)
			continue
		}
		for _, p := range got.Points {
			if !c.check(p) {
				t.Errorf("%v: point %s", c.args, js)
				break
			}
		}
		if got.Summary.CPUMaxPercent < got.Summary.CPUAvgPercent {
			t.Errorf("%v: summary %+v", c.args, got.Summary)
		}
	}

	// MAX is never below AVERAGE over the same span.
	avg, _ := readInto[MetricsHistory](t, env, "get_metrics_history", map[string]any{"node": "home", "timeframe": "day", "cf": "AVERAGE"})
	maxed, _ := readInto[MetricsHistory](t, env, "get_metrics_history", map[string]any{"node": "home", "timeframe": "day", "cf": "MAX"})
	byTime := map[string]MetricsPoint{}
	for _, p := range avg.Points {
		byTime[p.Time] = p
	}
	compared := 0
	for _, m := range maxed.Points {
		if a, ok := byTime[m.Time]; ok {
			compared++
			if *m.CPUPercent < *a.CPUPercent || *m.MemUsedBytes < *a.MemUsedBytes {
				t.Errorf("at %s MAX %v/%v is below AVERAGE %v/%v", m.Time, *m.CPUPercent, *m.MemUsedBytes, *a.CPUPercent, *a.MemUsedBytes)
			}
		}
	}
	if compared < 20 || avg.CF != "AVERAGE" || maxed.CF != "MAX" || avg.Timeframe != "day" {
		t.Errorf("compared %d spans of %+v and %+v", compared, avg, maxed)
	}

	for _, c := range []struct {
		args  map[string]any
		words []string
	}{
		{map[string]any{"node": "pve", "vmid": 101}, []string{"either node", "not both"}},
		{map[string]any{}, []string{"either node"}},
		{map[string]any{"vmid": 101, "points": 1}, []string{"points"}},
		{map[string]any{"vmid": 101, "timeframe": "decade"}, []string{"timeframe"}},
		{map[string]any{"node": "nosuch"}, []string{`no node "nosuch"`, "pve"}},
		{map[string]any{"vmid": 999}, []string{"no guest with VMID 999"}},
	} {
		_, err := runRead(t, env, "get_metrics_history", c.args)
		errorSays(t, "get_metrics_history", err, c.words...)
	}
	sim.SetNodeOffline("agent", true)
	_, err := runRead(t, env, "get_metrics_history", map[string]any{"node": "agent"})
	errorSays(t, "offline node", err, "node agent is offline or unreachable")
	if err != nil && strings.Contains(err.Error(), "either") {
		t.Error(err)
	}
}
