package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

func (a *App) listApprovals(c echo.Context) error {
	status := c.QueryParam("status")
	switch status {
	case "", store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired, store.ApprovalConsumed:
	default:
		return apiError(http.StatusBadRequest, "status must be pending, approved, denied, expired or consumed", nil)
	}
	list, err := a.opts.Store.ListApprovals(c.Request().Context(), status)
	if err != nil {
		return err
	}
	return jsonList(c, "approvals", list)
}

func (a *App) getApproval(c echo.Context) error {
	id, err := approvalID(c)
	if err != nil {
		return err
	}
	ap, err := a.opts.Store.GetApproval(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such approval", nil)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ap)
}

// decideApproval records the operator's decision; only pending, unexpired approvals
// can be decided, and a second click gets 409.
func (a *App) decideApproval(approve bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		id, err := approvalID(c)
		if err != nil {
			return err
		}
		ap, err := a.opts.Server.DecideApproval(ctx, id, approve, safety.OperatorID)
		var switchOn *server.SwitchOnError
		switch {
		case errors.As(err, &switchOn):
			return apiError(http.StatusConflict, switchOn.Error(), map[string]string{"reason": "safety_switch"})
		case errors.Is(err, store.ErrNotFound):
			return apiError(http.StatusNotFound, "no such approval", nil)
		case errors.Is(err, store.ErrNotPending):
			return apiError(http.StatusConflict, "this approval was already decided", nil)
		case errors.Is(err, store.ErrExpired):
			return apiError(http.StatusConflict, "this approval expired before it was decided", nil)
		case err != nil:
			return err
		}
		return c.JSON(http.StatusOK, ap)
	}
}

type safetyState struct {
	KillSwitch bool `json:"kill_switch"`
	ReadOnly   bool `json:"read_only"`
}

func (a *App) getSafety(c echo.Context) error {
	st, err := a.opts.Server.SafetyState(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, safetyState{KillSwitch: st.KillSwitch, ReadOnly: st.ReadOnly})
}

func (a *App) putSafety(c echo.Context) error {
	var req struct {
		KillSwitch *bool `json:"kill_switch"`
		ReadOnly   *bool `json:"read_only"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if req.KillSwitch == nil && req.ReadOnly == nil {
		return apiError(http.StatusBadRequest, "send kill_switch and/or read_only as booleans", nil)
	}
	ctx := c.Request().Context()
	if req.KillSwitch != nil {
		if err := a.opts.Server.SetSwitch(ctx, server.PrefKillSwitch, *req.KillSwitch, safety.OperatorID); err != nil {
			return err
		}
	}
	if req.ReadOnly != nil {
		if err := a.opts.Server.SetSwitch(ctx, server.PrefReadOnly, *req.ReadOnly, safety.OperatorID); err != nil {
			return err
		}
	}
	return a.getSafety(c)
}

func (a *App) listTools(c echo.Context) error {
	type toolInfo struct {
		Name        string `json:"name"`
		Tier        string `json:"tier"`
		Title       string `json:"title"`
		Description string `json:"description"`
	}
	var out []toolInfo
	for _, t := range a.opts.Server.AllTools() {
		out = append(out, toolInfo{Name: t.Name, Tier: t.Tier.String(), Title: t.Title, Description: t.Description})
	}
	return c.JSON(http.StatusOK, map[string]any{"tools": out})
}

func (a *App) eventFilter(c echo.Context) (store.EventFilter, error) {
	f := store.EventFilter{Limit: 100}
	var problems []string
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			problems = append(problems, "limit must be 1..1000")
		}
		f.Limit = n
	}
	if v := c.QueryParam("type"); v != "" {
		if !store.IsEventKind(v) {
			problems = append(problems, "type must be one of tool, approval, cluster, alert, safety, system, rule")
		}
		f.Type = v
	}
	if v := c.QueryParam("node"); v != "" {
		if !pveid.ValidNodeName(v) {
			problems = append(problems, "node must be a node name")
		}
		f.Node = v
	}
	if v := c.QueryParam("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			problems = append(problems, "since must be an RFC 3339 time, e.g. 2026-11-26T08:00:00Z")
		}
		f.Since = t
	}
	cluster, err := a.feedCluster(c)
	if err != nil {
		problems = append(problems, err.Error())
	}
	f.Cluster = cluster
	if len(problems) > 0 {
		return f, apiError(http.StatusBadRequest, "invalid query", problems)
	}
	return f, nil
}

// listEvents answers the history, newest first; unresolvedOnly keeps open alerts and the like.
func (a *App) listEvents(unresolvedOnly bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := a.eventFilter(c)
		if err != nil {
			return err
		}
		f.UnresolvedOnly = unresolvedOnly
		list, err := a.opts.Store.ListEvents(c.Request().Context(), f)
		if err != nil {
			return err
		}
		return jsonList(c, "events", list)
	}
}

// jsonList answers {key: list}, with [] rather than null for an empty list.
func jsonList[T any](c echo.Context, key string, list []T) error {
	if list == nil {
		list = []T{}
	}
	return c.JSON(http.StatusOK, map[string]any{key: list})
}

func (a *App) createEvent(c echo.Context) error {
	var req struct {
		Type     string          `json:"type"`
		Severity string          `json:"severity"`
		Source   string          `json:"source"`
		Node     string          `json:"node"`
		Summary  string          `json:"summary"`
		Details  json.RawMessage `json:"details"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	var problems []string
	if !store.IsEventKind(req.Type) {
		problems = append(problems, "type must be one of tool, approval, cluster, alert, safety, system, rule")
	}
	if req.Severity == "" {
		req.Severity = store.SeverityInfo
	}
	if !store.IsSeverity(req.Severity) {
		problems = append(problems, "severity must be info, warning or critical")
	}
	if req.Node != "" && !pveid.ValidNodeName(req.Node) {
		problems = append(problems, "node must be a node name")
	}
	if s := strings.TrimSpace(req.Summary); s == "" || len(s) > 500 {
		problems = append(problems, "summary is required, at most 500 characters")
	}
	if len(req.Source) > 100 {
		problems = append(problems, "source is at most 100 characters")
	}
	if store.IsJarvisSource(req.Source) {
		problems = append(problems, fmt.Sprintf("source %q is one Jarvis's own events carry; name yourself (e.g. operator, or your script's name)", req.Source))
	}
	if len(req.Details) > 0 && !json.Valid(req.Details) {
		problems = append(problems, "details must be JSON")
	}
	if len(problems) > 0 {
		return apiError(http.StatusBadRequest, "invalid event", problems)
	}
	if req.Source == "" {
		req.Source = safety.OperatorID
	}
	ev := &store.Event{Type: req.Type, Severity: req.Severity, Source: req.Source, Node: req.Node, Summary: strings.TrimSpace(req.Summary), Details: req.Details}
	if err := a.opts.Store.Publish(c.Request().Context(), ev); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, ev)
}

// approvalID reads the :id of an approval route; a value that cannot be an
// approval id is the caller's mistake (400), not a missing approval (404).
func approvalID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !store.IsApprovalID(id) {
		return "", apiError(http.StatusBadRequest, "approval id must look like apr_ followed by 16 hex digits, as in the needs_approval answer", map[string]string{"field": "id"})
	}
	return id, nil
}

// eventID parses an event id no smaller than min. Events are numbered from 1 in
// a SQLite integer column, so a number past int64 cannot name one: that is a bad
// request, not a 500.
func eventID(field, raw string, min uint64) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
	if err != nil || id < min || id > math.MaxInt64 {
		return 0, apiError(http.StatusBadRequest, fmt.Sprintf("%s must be an event id, a whole number from %d to %d", field, min, int64(math.MaxInt64)), map[string]string{"field": field})
	}
	return id, nil
}

func (a *App) resolveEvent(c echo.Context) error {
	id, err := eventID("id", c.Param("id"), 1)
	if err != nil {
		return err
	}
	ev, err := a.opts.Store.ResolveEvent(c.Request().Context(), id, safety.OperatorID)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such event", nil)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ev)
}

func (a *App) listPreferences(c echo.Context) error {
	prefs, err := a.opts.Store.ListPreferences(c.Request().Context())
	if err != nil {
		return err
	}
	for k := range prefs {
		if strings.HasPrefix(k, "auth.") {
			delete(prefs, k)
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"preferences": prefs})
}

var prefKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,100}$`)

func (a *App) putPreference(c echo.Context) error {
	key := c.Param("key")
	if !prefKeyRE.MatchString(key) {
		return apiError(http.StatusBadRequest, "key may use letters, digits, '.', '_' and '-' (1-100)", nil)
	}
	if strings.HasPrefix(key, "safety.") {
		return apiError(http.StatusBadRequest, "safety switches are set with PUT /api/safety", nil)
	}
	if strings.HasPrefix(key, "auth.") {
		return apiError(http.StatusBadRequest, "auth.* keys belong to Jarvis's login sessions and cannot be set", nil)
	}
	var req struct {
		Value *string `json:"value"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if req.Value == nil || len(*req.Value) > 10000 {
		return apiError(http.StatusBadRequest, "send {\"value\": \"…\"} (at most 10000 characters)", nil)
	}
	if err := a.opts.Store.SetPreference(c.Request().Context(), key, *req.Value); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"key": key, "value": *req.Value})
}

func (a *App) listAudit(c echo.Context) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return apiError(http.StatusBadRequest, "limit must be 1..1000", nil)
		}
		limit = n
	}
	rows, err := a.opts.Store.AuditRecent(c.Request().Context(), limit)
	if err != nil {
		return err
	}
	return jsonList(c, "rows", rows)
}

// decodeStrict reads a JSON body, refusing unknown fields and trailing data.
func decodeStrict(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(http.StatusRequestEntityTooLarge, "request body too large", nil)
		}
		return apiError(http.StatusBadRequest, "invalid JSON body", fmt.Sprint(err))
	}
	if dec.More() {
		return apiError(http.StatusBadRequest, "invalid JSON body", "trailing data after the JSON object")
	}
	return nil
}
