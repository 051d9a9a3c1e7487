package tools

// get_metrics_history: a node's or a guest's RRD history, folded into a few
// points a model can read.

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

type MetricsInput struct {
	Node      string `json:"node,omitempty" jsonschema:"a node's history; give node or vmid, not both"`
	VMID      int    `json:"vmid,omitempty" jsonschema:"a guest's history"`
	Timeframe string `json:"timeframe,omitempty" jsonschema:"hour (default), day, week, month or year"`
	CF        string `json:"cf,omitempty" jsonschema:"AVERAGE (default) or MAX of each point's span"`
	Points    int    `json:"points,omitempty" jsonschema:"how many points, 2-60 (default 24)"`
}

const (
	defaultMetricsPoints = 24
	maxMetricsPoints     = 60
)

// MetricsPoint is one span of the history; a value Proxmox did not record
// for the span is left out.
type MetricsPoint struct {
	Time          string   `json:"time" jsonschema:"end of the span, RFC 3339, UTC"`
	CPUPercent    *float64 `json:"cpu_percent,omitempty" jsonschema:"0-100, of the node's or guest's CPUs"`
	MemUsedBytes  *int64   `json:"mem_used_bytes,omitempty"`
	MemTotalBytes *int64   `json:"mem_total_bytes,omitempty"`
	NetInBps      *int64   `json:"net_in_bps,omitempty" jsonschema:"bytes per second"`
	NetOutBps     *int64   `json:"net_out_bps,omitempty" jsonschema:"bytes per second"`
	DiskReadBps   *int64   `json:"disk_read_bps,omitempty" jsonschema:"bytes per second"`
	DiskWriteBps  *int64   `json:"disk_write_bps,omitempty" jsonschema:"bytes per second"`
}

type MetricsSummary struct {
	CPUAvgPercent float64 `json:"cpu_avg_percent"`
	CPUMaxPercent float64 `json:"cpu_max_percent"`
	MemMaxBytes   int64   `json:"mem_max_bytes"`
}

type MetricsHistory struct {
	Subject   string         `json:"subject"`
	Timeframe string         `json:"timeframe"`
	CF        string         `json:"cf"`
	Points    []MetricsPoint `json:"points" jsonschema:"oldest first"`
	Summary   MetricsSummary `json:"summary" jsonschema:"over the whole time frame"`
}

func getMetricsHistory() *Tool {
	return define[MetricsInput, MetricsHistory](spec{
		name: "get_metrics_history", title: "Metrics history", tier: safety.Green,
		description: "CPU, memory, network and disk I/O of a node or guest over the last hour, day, week, month or year, as 2-60 points (average or max), with a summary.",
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			vmidSchema(property(s, "vmid"))
			enumSchema(property(s, "timeframe"), pve.RRDTimeframes...)
			enumSchema(property(s, "cf"), "AVERAGE", "MAX")
			rangeSchema(property(s, "points"), 2, maxMetricsPoints)
		},
	}, func(ctx context.Context, env *Env, in MetricsInput) (*Call, error) {
		if (in.Node == "") == (in.VMID == 0) {
			return nil, inputErrorf("give either node (a node's history) or vmid (a guest's), not both and not neither")
		}
		if in.Timeframe == "" {
			in.Timeframe = "hour"
		}
		if in.CF == "" {
			in.CF = "AVERAGE"
		}
		if in.Points == 0 {
			in.Points = defaultMetricsPoints
		}
		if in.Points < 2 || in.Points > maxMetricsPoints {
			return nil, inputErrorf("points %d is out of range: 2-%d", in.Points, maxMetricsPoints)
		}
		what := fmt.Sprintf("the %s %s history", in.Timeframe, in.CF)
		if in.Node != "" {
			if err := checkNode(in.Node); err != nil {
				return nil, err
			}
			return read(safety.Target{Node: in.Node}, fmt.Sprintf("Read %s of node %s", what, in.Node), func(ctx context.Context) (any, error) {
				rows, err := env.PVE.RRDData(ctx, in.Node, "", 0, in.Timeframe, in.CF)
				if err != nil {
					return nil, nodeError(ctx, env, in.Node, err)
				}
				return metricsHistory("node "+in.Node, in, rows), nil
			}), nil
		}
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		subject := guestNoun(r) + " on node " + r.Node
		return read(guestTarget(r), fmt.Sprintf("Read %s of %s", what, subject), func(ctx context.Context) (any, error) {
			rows, err := env.PVE.RRDData(ctx, r.Node, r.Type, in.VMID, in.Timeframe, in.CF)
			if err != nil {
				return nil, guestReadError(ctx, env, r, err)
			}
			return metricsHistory(subject, in, rows), nil
		}), nil
	})
}

func metricsHistory(subject string, in MetricsInput, rows []pve.RRDPoint) MetricsHistory {
	points, summary := rrdDownsample(rows, in.Points, in.CF == "MAX")
	return MetricsHistory{Subject: subject, Timeframe: in.Timeframe, CF: in.CF, Points: points, Summary: summary}
}

// rrdField reads one value of a row; nil when the row lacks it. Guests
// report mem/maxmem, nodes memused/memtotal.
type rrdField func(p pve.RRDPoint) *pve.Num

func firstNum(a, b *pve.Num) *pve.Num {
	if a != nil {
		return a
	}
	return b
}

var (
	rrdCPU       rrdField = func(p pve.RRDPoint) *pve.Num { return p.CPU }
	rrdMemUsed   rrdField = func(p pve.RRDPoint) *pve.Num { return firstNum(p.Mem, p.MemUsed) }
	rrdMemTotal  rrdField = func(p pve.RRDPoint) *pve.Num { return firstNum(p.MaxMem, p.MemTotal) }
	rrdNetIn     rrdField = func(p pve.RRDPoint) *pve.Num { return p.NetIn }
	rrdNetOut    rrdField = func(p pve.RRDPoint) *pve.Num { return p.NetOut }
	rrdDiskRead  rrdField = func(p pve.RRDPoint) *pve.Num { return p.DiskRead }
	rrdDiskWrite rrdField = func(p pve.RRDPoint) *pve.Num { return p.DiskWrite }
)

// rrdFold consolidates one field over rows: the mean, or the largest with
// useMax; rows without the field are skipped. ok is false when none has it.
func rrdFold(rows []pve.RRDPoint, f rrdField, useMax bool) (v float64, ok bool) {
	n := 0
	for _, r := range rows {
		x := f(r)
		if x == nil {
			continue
		}
		switch {
		case n == 0:
			v = float64(*x)
		case useMax:
			v = math.Max(v, float64(*x))
		default:
			v += float64(*x)
		}
		n++
	}
	if n == 0 {
		return 0, false
	}
	if !useMax {
		v /= float64(n)
	}
	return v, true
}

// rrdDownsample folds PVE's rows (about 70, oldest first) into at most points
// spans of consecutive rows, each the mean (or, with useMax, the largest) of
// its rows' values. A span with no value at all is left out. The summary is
// over every row.
func rrdDownsample(rows []pve.RRDPoint, points int, useMax bool) ([]MetricsPoint, MetricsSummary) {
	out := []MetricsPoint{}
	buckets := min(points, len(rows))
	for b := range buckets {
		span := rows[b*len(rows)/buckets : (b+1)*len(rows)/buckets]
		p := MetricsPoint{Time: time.Unix(int64(span[len(span)-1].Time), 0).UTC().Format(time.RFC3339)}
		has := false
		if v, ok := rrdFold(span, rrdCPU, useMax); ok {
			p.CPUPercent, has = ptr(FractionPercent(v)), true
		}
		for _, f := range []struct {
			field rrdField
			dst   **int64
		}{
			{rrdMemUsed, &p.MemUsedBytes}, {rrdMemTotal, &p.MemTotalBytes},
			{rrdNetIn, &p.NetInBps}, {rrdNetOut, &p.NetOutBps},
			{rrdDiskRead, &p.DiskReadBps}, {rrdDiskWrite, &p.DiskWriteBps},
		} {
			if v, ok := rrdFold(span, f.field, useMax); ok {
				*f.dst, has = ptr(int64(math.Round(v))), true
			}
		}
		if has {
			out = append(out, p)
		}
	}
	var sum MetricsSummary
	if v, ok := rrdFold(rows, rrdCPU, false); ok {
		sum.CPUAvgPercent = FractionPercent(v)
	}
	if v, ok := rrdFold(rows, rrdCPU, true); ok {
		sum.CPUMaxPercent = FractionPercent(v)
	}
	if v, ok := rrdFold(rows, rrdMemUsed, true); ok {
		sum.MemMaxBytes = int64(math.Round(v))
	}
	return out, sum
}
