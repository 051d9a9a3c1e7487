package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// The console's guest detail. Every piece of it is a GREEN tool call made
// through server.Dispatch as the logged-in operator, so each read is decided,
// audited and announced on the feed like any agent's: the console has no side
// door to the cluster. Each section stands alone: a tool that fails (or does
// not exist in this build) gives its section an error sentence, and the rest
// of the page still shows.

// guestSectionTimeout bounds one section's tool call; a slow cluster shows
// as that section's error instead of holding the whole page.
const guestSectionTimeout = 20 * time.Second

// guestSection is one tool's answer for the detail page: its structured output,
// or the sentence saying why there is none.
type guestSection struct {
	Tool string          `json:"tool"`
	Data json.RawMessage `json:"data,omitempty"`
	// Error is why there is no data: the tool's failure or the refusal's
	// reason, as a sentence.
	Error string `json:"error,omitempty"`
	// Decision is the refusal's decision when the call was refused (blocked,
	// rate_limited, …).
	Decision string `json:"decision,omitempty"`
}

// guestProtection says whether Jarvis's policy protects the guest: no change
// to it, or to its node, is allowed. Reads are never stopped by protection.
type guestProtection struct {
	Protected bool     `json:"protected"`
	Reasons   []string `json:"reasons,omitempty"`
}

type guestDetail struct {
	VMID int `json:"vmid"`
	// Cluster is the cluster read, with several ("" with one).
	Cluster string `json:"cluster,omitempty"`
	Node    string `json:"node,omitempty"`
	Kind    string `json:"kind,omitempty"`
	// CreatedByJarvis is the config's answer, or Jarvis's own record of the
	// guests it created when the config cannot be read.
	CreatedByJarvis bool            `json:"created_by_jarvis"`
	Protection      guestProtection `json:"protection"`
	Config          guestSection    `json:"config"`
	Agent           guestSection    `json:"agent"`
	Snapshots       guestSection    `json:"snapshots"`
	Backups         guestSection    `json:"backups"`
}

// guestVMIDRE is a VMID as the path spells it: digits, no sign, no leading zero.
var guestVMIDRE = regexp.MustCompile(`^[1-9][0-9]{0,8}$`)

func guestVMID(c echo.Context) (int, error) {
	raw := c.Param("vmid")
	n, err := strconv.Atoi(raw)
	if !guestVMIDRE.MatchString(raw) || err != nil || !pveid.ValidVMID(n) {
		return 0, apiError(http.StatusBadRequest,
			fmt.Sprintf("vmid must be a guest id: a whole number from %d to %d without a sign or leading zeros, as in /api/guests/101", pveid.MinVMID, pveid.MaxVMID),
			map[string]string{"field": "vmid"})
	}
	return n, nil
}

// consolePrincipal is who the console's reads run as: the logged-in operator,
// as the token says.
func (a *App) consolePrincipal(c echo.Context) (safety.Principal, error) {
	claims, err := a.opts.Tokens.Verify(c.Request().Context(), bearer(c.Request()))
	if err != nil || claims.Kind != safety.Operator {
		return safety.Principal{}, apiError(http.StatusUnauthorized, "the token is invalid or expired; log in again", nil)
	}
	return claims.Principal(), nil
}

// getGuest answers GET /api/guests/:vmid: config, guest agent, snapshots and
// backups of one guest, each from its own tool call, plus whether the policy
// protects it.
func (a *App) getGuest(c echo.Context) error {
	vmid, err := guestVMID(c)
	if err != nil {
		return err
	}
	cluster, err := a.guestCluster(c)
	if err != nil {
		return err
	}
	p, err := a.consolePrincipal(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	out := guestDetail{VMID: vmid, Cluster: cluster}
	calls := []struct {
		into *guestSection
		tool string
		args map[string]any
	}{
		{&out.Config, "get_guest_config", map[string]any{"vmid": vmid}},
		{&out.Agent, "get_guest_agent_info", map[string]any{"vmid": vmid}},
		{&out.Snapshots, "list_snapshots", map[string]any{"vmid": vmid}},
		{&out.Backups, "get_backups", map[string]any{"vmid": vmid}},
	}
	var wg sync.WaitGroup
	for _, call := range calls {
		if cluster != "" {
			call.args["cluster"] = cluster
		}
		wg.Go(func() { *call.into = a.dispatchSection(ctx, p, call.tool, call.args) })
	}
	wg.Wait()
	out.Config.Data = withoutSecrets(out.Config.Data)

	// Where the guest lives: the config says, else any other section that does.
	for _, s := range []guestSection{out.Config, out.Snapshots, out.Agent} {
		var where struct {
			Node string `json:"node"`
			Kind string `json:"kind"`
		}
		if len(s.Data) > 0 && json.Unmarshal(s.Data, &where) == nil && where.Node != "" {
			out.Node, out.Kind = where.Node, where.Kind
			break
		}
	}
	var cfg struct {
		CreatedByJarvis *bool `json:"created_by_jarvis"`
	}
	// Only the config can tell (its id tag against Jarvis's record); without
	// it the badge is not shown.
	if len(out.Config.Data) > 0 && json.Unmarshal(out.Config.Data, &cfg) == nil && cfg.CreatedByJarvis != nil {
		out.CreatedByJarvis = *cfg.CreatedByJarvis
	}
	out.Protection = a.guestProtection(cluster, vmid, out.Node, out.Kind)
	return c.JSON(http.StatusOK, out)
}

// metricsTimeframes are the RRD timeframes the detail page charts.
var metricsTimeframes = []string{"hour", "day", "week"}

// guestMetricsPoints is how many points a chart gets: enough for a curve,
// few enough for a phone.
const guestMetricsPoints = 30

// getGuestMetrics answers GET /api/guests/:vmid/metrics?timeframe=hour|day|week
// from get_metrics_history.
func (a *App) getGuestMetrics(c echo.Context) error {
	vmid, err := guestVMID(c)
	if err != nil {
		return err
	}
	tf := c.QueryParam("timeframe")
	if tf == "" {
		tf = "hour"
	}
	if !slices.Contains(metricsTimeframes, tf) {
		return apiError(http.StatusBadRequest, "timeframe must be hour, day or week", map[string]string{"field": "timeframe"})
	}
	cluster, err := a.guestCluster(c)
	if err != nil {
		return err
	}
	p, err := a.consolePrincipal(c)
	if err != nil {
		return err
	}
	args := map[string]any{"vmid": vmid, "timeframe": tf, "points": guestMetricsPoints}
	out := map[string]any{"vmid": vmid, "timeframe": tf}
	if cluster != "" {
		args["cluster"], out["cluster"] = cluster, cluster
	}
	out["metrics"] = a.dispatchSection(c.Request().Context(), p, "get_metrics_history", args)
	return c.JSON(http.StatusOK, out)
}

// guestCluster reads the guest view's cluster parameter: with several
// clusters, one of them (none given: the default); with one, it is ignored,
// as the other API filters do, and the answer names none.
func (a *App) guestCluster(c echo.Context) (string, error) {
	names := a.opts.Server.ClusterNames()
	v := c.QueryParam("cluster")
	switch {
	case len(names) < 2:
		return "", nil
	case v == "":
		return names[0], nil
	case !slices.Contains(names, v):
		return "", apiError(http.StatusBadRequest, fmt.Sprintf("no cluster %s: one of %s", v, strings.Join(names, ", ")),
			map[string]string{"field": "cluster"})
	}
	return v, nil
}

// dispatchSection runs one GREEN tool through the dispatch path and turns its
// result into a section: the output, or the sentence saying why not.
func (a *App) dispatchSection(ctx context.Context, p safety.Principal, tool string, args map[string]any) guestSection {
	sec := guestSection{Tool: tool}
	raw, err := json.Marshal(args)
	if err != nil {
		sec.Error = fmt.Sprintf("the arguments for %s could not be encoded", tool)
		return sec
	}
	ctx, cancel := context.WithTimeout(ctx, guestSectionTimeout)
	defer cancel()
	// Direct: the console is a person's view, not a model's tool list, so the
	// toolsets (JARVIS_TOOLSETS trims what models see) do not limit it; the
	// tier, the ceiling and the audit log apply as to any call.
	res := a.opts.Server.Dispatch(ctx, server.Call{Principal: p, Tool: tool, Args: raw, Direct: true})
	if res == nil {
		sec.Error = tool + " gave no answer"
		return sec
	}
	data, _ := structured(res.StructuredContent)
	if res.IsError {
		var refusal server.Refusal
		if len(data) > 0 && json.Unmarshal(data, &refusal) == nil && refusal.Reason != "" {
			sec.Error, sec.Decision = refusal.Reason, string(refusal.Decision)
		} else {
			sec.Error = resultText(res)
		}
		if ctx.Err() != nil && sec.Error == "" {
			sec.Error = fmt.Sprintf("%s did not answer within %s", tool, guestSectionTimeout)
		}
		if sec.Error == "" {
			sec.Error = tool + " failed without saying why"
		}
		return sec
	}
	if len(data) == 0 {
		sec.Error = tool + " answered without structured content"
		return sec
	}
	sec.Data = data
	return sec
}

// structured returns a result's structured content as JSON.
func structured(v any) (json.RawMessage, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return s, nil
	case []byte:
		return s, nil
	default:
		return json.Marshal(s)
	}
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok && strings.TrimSpace(t.Text) != "" {
			parts = append(parts, strings.TrimSpace(t.Text))
		}
	}
	return strings.Join(parts, " ")
}

// secretKeyRE names fields that could hold a credential. get_guest_config
// reports only whether cloud-init has a password or SSH keys (…_set
// booleans); should a value ever slip into its output, the console drops it.
var secretKeyRE = regexp.MustCompile(`(?i)(password|passwd|secret|token|sshkeys|ssh_keys|private)`)

// withoutSecrets drops every non-boolean field whose name suggests a secret,
// at any depth. Output that is not a JSON object is returned as it is.
func withoutSecrets(data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		return data
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return data
	}
	if !scrub(v) {
		return data
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return out
}

// scrub removes secret-looking fields in place and reports whether it did.
func scrub(v any) bool {
	changed := false
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if _, isBool := val.(bool); secretKeyRE.MatchString(k) && !isBool && val != nil {
				delete(t, k)
				changed = true
				continue
			}
			if scrub(val) {
				changed = true
			}
		}
	case []any:
		for _, val := range t {
			if scrub(val) {
				changed = true
			}
		}
	}
	return changed
}

// guestProtection asks the policy whether a change to the guest, or to its
// node, would be refused as protected. The policy itself answers (the same
// Decide every call goes through), so the console and the dispatch path
// cannot disagree.
func (a *App) guestProtection(cluster string, vmid int, node, kind string) guestProtection {
	pol := a.opts.Server.Policy()
	if p, ok := a.opts.Server.PolicyOf(cluster); ok {
		pol = p
	}
	var out guestProtection
	ask := func(t safety.Target) {
		v := pol.Decide(safety.Request{
			Principal: safety.Principal{ID: safety.OperatorID, Kind: safety.Operator, MaxTier: safety.Red},
			Tool:      "console_protection_check", Tier: safety.Yellow, Target: t,
		}, safety.State{})
		if v.Decision == safety.Protected {
			out.Protected = true
			out.Reasons = append(out.Reasons, v.Reason)
		}
	}
	ask(safety.Target{VMID: vmid, Kind: kind})
	if node != "" {
		ask(safety.Target{Node: node})
	}
	return out
}
