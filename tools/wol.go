package tools

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// WakeOnLAN sends magic packets to configured nodes.
type WakeOnLAN struct {
	macs      map[string]net.HardwareAddr
	broadcast *net.UDPAddr
}

// ParseWakeOnLAN reads "node=MAC,…" and the broadcast "host:port". An empty list
// means Wake-on-LAN is not configured (nil, nil).
func ParseWakeOnLAN(list, broadcast string) (*WakeOnLAN, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	w := &WakeOnLAN{macs: map[string]net.HardwareAddr{}}
	var problems []string
	for _, part := range strings.Split(list, ",") {
		node, mac, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !pveid.ValidNodeName(node) {
			problems = append(problems, fmt.Sprintf("%q must be node=MAC", part))
			continue
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			problems = append(problems, fmt.Sprintf("%q: %q is not a MAC address like 52:54:00:12:34:56", node, mac))
			continue
		}
		w.macs[node] = hw
	}
	addr, err := net.ResolveUDPAddr("udp4", broadcast)
	if err != nil || addr.IP == nil || addr.IP.To4() == nil {
		problems = append(problems, fmt.Sprintf("JARVIS_WOL_BROADCAST %q must be an IPv4 address with port, e.g. 192.168.1.255:9", broadcast))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("JARVIS_WOL_MACS: %s", strings.Join(problems, "; "))
	}
	w.broadcast = addr
	return w, nil
}

// MagicPacket is six 0xFF bytes then the MAC sixteen times.
func MagicPacket(mac net.HardwareAddr) []byte {
	p := bytes.Repeat([]byte{0xFF}, 6)
	for range 16 {
		p = append(p, mac...)
	}
	return p
}

// Send sends one magic packet for node.
func (w *WakeOnLAN) Send(ctx context.Context, node string) (int, error) {
	mac, ok := w.macs[node]
	if !ok {
		return 0, fmt.Errorf("node %s has no MAC address in JARVIS_WOL_MACS", node)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp4", w.broadcast.String())
	if err != nil {
		return 0, fmt.Errorf("opening UDP to %s: %w", w.broadcast, err)
	}
	defer conn.Close()
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = setBroadcast(uc)
	}
	return conn.Write(MagicPacket(mac))
}

func (w *WakeOnLAN) nodes() []string {
	var out []string
	for n := range w.macs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type WakeOut struct {
	Node      string `json:"node"`
	MAC       string `json:"mac"`
	Broadcast string `json:"broadcast"`
	SentBytes int    `json:"sent_bytes"`
	Note      string `json:"note"`
}

func wakeNode() *Tool {
	return define[NodeInput, WakeOut](spec{
		name: "wake_node", title: "Wake node (Wake-on-LAN)", tier: safety.Yellow,
		description: "Send a Wake-on-LAN magic packet to an offline node's configured MAC address. Refused when the node is already online.",
		adjust:      func(s *jsonschema.Schema) { nodeSchema(property(s, "node")) },
	}, func(ctx context.Context, env *Env, in NodeInput) (*Call, error) {
		if err := checkNode(in.Node); err != nil {
			return nil, err
		}
		if env.Wake == nil {
			return nil, fmt.Errorf("Wake-on-LAN is not configured: set JARVIS_WOL_MACS (node=MAC,…) and JARVIS_WOL_BROADCAST")
		}
		mac, ok := env.Wake.macs[in.Node]
		if !ok {
			return nil, inputErrorf("node %q has no MAC address configured; configured: %s", in.Node, strings.Join(env.Wake.nodes(), ", "))
		}
		if env.PVE != nil {
			if entries, err := env.PVE.ClusterStatus(ctx); err == nil {
				for _, e := range entries {
					if e.Type == "node" && e.Name == in.Node && bool(e.Online) {
						return nil, inputErrorf("node %s is already online; nothing to wake", in.Node)
					}
				}
			}
		}
		effect := fmt.Sprintf("Send a Wake-on-LAN packet for node %s (MAC %s) to %s", in.Node, mac, env.Wake.broadcast)
		return &Call{Target: safety.Target{Node: in.Node}, Effect: effect, Run: func(ctx context.Context, _ Progress) (any, error) {
			n, err := env.Wake.Send(ctx, in.Node)
			if err != nil {
				return nil, err
			}
			return WakeOut{Node: in.Node, MAC: mac.String(), Broadcast: env.Wake.broadcast.String(), SentBytes: n,
				Note: "packet sent; a node usually answers within one to three minutes (check get_cluster_status)"}, nil
		}}, nil
	})
}
