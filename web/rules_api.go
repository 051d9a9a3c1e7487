package web

// The operator API for standing approvals ("rules", server/rules.go): list,
// show, create, change and revoke. Every route sits in the operator group
// (requireOperator): an agent token gets 403, so an agent can never make,
// widen or lift a rule. The server checks a rule against the tools and the
// tokens it knows and says what to fix; this file checks the request's shape
// first (types, lengths, ranges), so a typo gets a 400 that names the field.
//
//	GET    /api/rules[?all=1]   current version of each rule with status and spend (active only unless all)
//	GET    /api/rules/options   what the console's form offers: callers, RED tools and their arguments, triggers
//	GET    /api/rules/:id       {rule, versions}
//	POST   /api/rules           create (ruleRequest) → 201 the rule
//	PUT    /api/rules/:id       a new version (same body) → 200 the rule
//	DELETE /api/rules/:id       revoke → 200 the rule, revoked

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// Bounds on a rule request. A rule is a narrow exception written by a person:
// anything past these is a mistake, not a need.
const (
	ruleMaxPerHour  = 100
	ruleMaxFailures = 100
	ruleMaxLifetime = 366 * 24 * time.Hour
	ruleMaxArgs     = 32
	ruleMaxValues   = 100
	ruleMaxValueLen = 4096
	ruleMaxNoteLen  = 1000
	ruleMaxForLen   = 200
	ruleTriggerNone = "none"
)

// ruleIDRE is a rule id as the store makes them: r_ and 12 hex digits.
var ruleIDRE = regexp.MustCompile(`^r_[0-9a-f]{12}$`)

// ruleArgRE is an argument name as tool inputs spell them.
var ruleArgRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// ruleValues is an argument's allowed values: a list of strings, numbers or
// booleans (numbers and booleans are kept as JSON writes them, which is how
// calls are compared), or one such value alone.
type ruleValues []string

func (v *ruleValues) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
	} else {
		raw = []json.RawMessage{b}
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		s, err := ruleScalar(r)
		if err != nil {
			return err
		}
		out = append(out, s)
	}
	*v = out
	return nil
}

// ruleScalar reads one allowed value.
func ruleScalar(r json.RawMessage) (string, error) {
	dec := json.NewDecoder(strings.NewReader(string(r)))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return "", err
	}
	if s, ok := store.RuleValue(x); ok {
		return s, nil
	}
	return "", errRuleValue
}

// errRuleValue is an allowed value that is a list, an object or null.
var errRuleValue = errors.New(`each allowed value in args must be a string, a number or true/false, as in {"vmid": ["101", "102"]}`)

// ruleRequest is the body of POST and PUT /api/rules.
type ruleRequest struct {
	// For is whom the rule lets act: an agent token's id, its name (when
	// unique) or its principal id, or "operators".
	For  string                `json:"for"`
	Tool string                `json:"tool"`
	Args map[string]ruleValues `json:"args"`
	// Trigger is an alert kind that must be open for the target; "" or
	// "none" for no trigger.
	Trigger          string          `json:"trigger"`
	PerTargetPerHour json.RawMessage `json:"per_target_per_hour"`
	MaxFailures      json.RawMessage `json:"max_failures"`
	// ExpiresIn is a Go duration (720h) or a number of days (30d); ExpiresAt
	// an RFC 3339 time. Exactly one of them.
	ExpiresIn string `json:"expires_in"`
	ExpiresAt string `json:"expires_at"`
	Note      string `json:"note"`
}

// wholeNumber reads a count from 1 to max, given as a JSON number or a
// string of digits (what a form field holds).
func wholeNumber(p *queryProblems, field string, raw json.RawMessage, max int) int {
	text := strings.TrimSpace(string(raw))
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = strings.TrimSpace(s)
	}
	if text == "" || text == "null" {
		p.add(field, "%s is required: a whole number from 1 to %d", field, max)
		return 0
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil || v < 1 || v > int64(max) {
		if len(text) > 40 {
			text = text[:40] + "…"
		}
		p.add(field, "%s must be a whole number from 1 to %d (got %s)", field, max, text)
		return 0
	}
	return int(v)
}

// parseLifetime reads "720h", "90m", "30d" or "1d12h".
func parseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days := 0.0
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return 0, errors.New("bad number of days")
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, err
		}
		rest = d
	}
	if days > ruleMaxLifetime.Hours()/24+1 {
		return ruleMaxLifetime + time.Hour, nil // past the limit; said as such
	}
	return time.Duration(days*float64(24*time.Hour)) + rest, nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == unicode.ReplacementChar
	}) < 0
}

// rule checks the request's shape and turns it into a store.Rule for the
// server, which checks it against the tools and tokens it knows.
func (req ruleRequest) rule(now time.Time) (store.Rule, error) {
	var p queryProblems
	r := store.Rule{Principal: strings.TrimSpace(req.For), Tool: strings.TrimSpace(req.Tool), Note: strings.TrimSpace(req.Note),
		Args: map[string][]string{}}
	switch {
	case r.Principal == "":
		p.add("for", "for is required: an agent token's id or name (jarvis token list), or operators")
	case len(r.Principal) > ruleMaxForLen || !printable(r.Principal):
		p.add("for", "for must be a token id or name of at most %d printable characters, or operators", ruleMaxForLen)
	}
	switch {
	case r.Tool == "":
		p.add("tool", "tool is required: the RED tool the rule lets through, e.g. start_vm")
	case !auditToolRE.MatchString(r.Tool):
		p.add("tool", "tool must be a tool name: lower-case letters, digits and _, as in start_vm")
	}
	if len(req.Args) > ruleMaxArgs {
		p.add("args", "args names at most %d arguments", ruleMaxArgs)
	}
	names := make([]string, 0, len(req.Args))
	for name := range req.Args {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		values := req.Args[name]
		switch {
		case !ruleArgRE.MatchString(name):
			p.add("args", "argument name %q is not one: lower-case letters, digits and _", name)
			continue
		case name == "approval_id":
			p.add("args", "approval_id is not an argument a rule can name")
			continue
		case len(values) == 0:
			p.add("args", "argument %s needs at least one allowed value (\"*\" allows any)", name)
			continue
		case len(values) > ruleMaxValues:
			p.add("args", "argument %s lists more than %d values", name, ruleMaxValues)
			continue
		}
		seen := map[string]bool{}
		var clean []string
		for _, v := range values {
			switch {
			case v == "":
				p.add("args", "argument %s has an empty allowed value", name)
			case len(v) > ruleMaxValueLen || !printable(v):
				p.add("args", "argument %s has a value that is not printable text of at most %d characters", name, ruleMaxValueLen)
			case !seen[v]:
				seen[v] = true
				clean = append(clean, v)
			}
		}
		r.Args[name] = clean
	}
	trigger := strings.TrimSpace(req.Trigger)
	if trigger == ruleTriggerNone {
		trigger = ""
	}
	if trigger != "" && !slices.Contains(store.AlertKinds(), trigger) {
		p.add("trigger", "trigger must be one of %s, or none", strings.Join(store.AlertKinds(), ", "))
	}
	r.Trigger = trigger
	r.PerTargetPerHour = wholeNumber(&p, "per_target_per_hour", req.PerTargetPerHour, ruleMaxPerHour)
	r.MaxFailures = wholeNumber(&p, "max_failures", req.MaxFailures, ruleMaxFailures)
	in, at := strings.TrimSpace(req.ExpiresIn), strings.TrimSpace(req.ExpiresAt)
	switch {
	case in == "" && at == "":
		p.add("expires_in", "give expires_in (a duration such as 720h or 30d) or expires_at (an RFC 3339 time): a rule always ends")
	case in != "" && at != "":
		p.add("expires_in", "give expires_in or expires_at, not both")
	case in != "":
		d, err := parseLifetime(in)
		switch {
		case err != nil:
			p.add("expires_in", "expires_in must be a duration such as 8h, 720h or 30d (got %q)", in)
		case d < time.Minute || d > ruleMaxLifetime:
			p.add("expires_in", "expires_in must be from 1m to 366 days (8784h)")
		default:
			r.ExpiresAt = now.Add(d)
		}
	default:
		t, err := time.Parse(time.RFC3339, at)
		switch {
		case err != nil:
			p.add("expires_at", "expires_at must be an RFC 3339 time, e.g. 2026-12-31T18:00:00Z")
		case !t.After(now):
			p.add("expires_at", "expires_at is in the past; a rule must end in the future")
		case t.Sub(now) > ruleMaxLifetime:
			p.add("expires_at", "expires_at is more than 366 days away")
		default:
			r.ExpiresAt = t
		}
	}
	if len(r.Note) > ruleMaxNoteLen {
		p.add("note", "note is at most %d characters", ruleMaxNoteLen)
	}
	return r, p.err()
}

// decodeRule reads a rule request strictly: unknown fields, trailing data and
// values of the wrong type are a 400 that says which.
func decodeRule(c echo.Context, now time.Time) (store.Rule, error) {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req ruleRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return store.Rule{}, apiError(http.StatusRequestEntityTooLarge, "request body too large", nil)
		case errors.Is(err, errRuleValue):
			return store.Rule{}, apiError(http.StatusBadRequest, errRuleValue.Error(), map[string]any{"field": "args"})
		case errors.As(err, &ute) && ute.Field != "":
			field, _, _ := strings.Cut(ute.Field, ".")
			return store.Rule{}, apiError(http.StatusBadRequest, fmt.Sprintf("%s has the wrong type: %s", field, ruleFieldHint(field)),
				map[string]any{"field": field})
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return store.Rule{}, apiError(http.StatusBadRequest, fmt.Sprintf("unknown field %q: a rule takes for, tool, args, trigger, per_target_per_hour, max_failures, expires_in or expires_at, note", name),
				map[string]any{"field": name})
		}
		return store.Rule{}, apiError(http.StatusBadRequest, fmt.Sprintf("invalid JSON body (%v): send a rule as {\"for\": …, \"tool\": …, \"args\": {…}, …}", err), nil)
	}
	if dec.More() {
		return store.Rule{}, apiError(http.StatusBadRequest, "invalid JSON body: trailing data after the JSON object", nil)
	}
	return req.rule(now)
}

func ruleFieldHint(field string) string {
	switch field {
	case "args":
		return `an object of argument name → list of allowed values, e.g. {"vmid": ["101", "102"]}`
	case "per_target_per_hour", "max_failures":
		return "a whole number"
	default:
		return "a string"
	}
}

// ruleID reads the :id of a rule route.
func ruleID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !ruleIDRE.MatchString(id) {
		return "", apiError(http.StatusBadRequest, "rule id must look like r_ followed by 12 hex digits, as GET /api/rules lists them", map[string]string{"field": "id"})
	}
	return id, nil
}

// ruleFailed maps what the server answered to a status. A rule the server
// refused (an unknown tool, a token it cannot find, an argument the tool does
// not take) is the operator's to fix: 400 with the server's sentence. The
// server's errors carry no type for that, so a failing database is told
// apart by asking the store.
func (a *App) ruleFailed(ctx context.Context, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, fmt.Sprintf("no rule %s; GET /api/rules?all=1 lists them", id), nil)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if perr := a.opts.Store.Ping(ctx); perr != nil {
		return err
	}
	return apiError(http.StatusBadRequest, err.Error(), nil)
}

// listRules answers GET /api/rules: active rules, or every rule with all=1.
func (a *App) listRules(c echo.Context) error {
	var q queryProblems
	p := queryOnce(c, &q, []string{"all"})
	all := false
	switch p["all"] {
	case "":
	case "1", "true":
		all = true
	case "0", "false":
		all = false
	default:
		q.add("all", "all must be 1 or 0")
	}
	if err := q.err(); err != nil {
		return err
	}
	list, err := a.opts.Server.Rules(c.Request().Context(), all)
	if err != nil {
		return err
	}
	return jsonList(c, "rules", list)
}

// getRule answers GET /api/rules/:id: the current version with its spend, and
// every version, oldest first.
func (a *App) getRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	view, versions, err := a.opts.Server.RuleDetail(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return a.ruleFailed(ctx, id, err)
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"rule": view, "versions": versions})
}

// ruleView answers with the current view of rule id.
func (a *App) ruleView(c echo.Context, status int, id string) error {
	view, _, err := a.opts.Server.RuleDetail(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(status, view)
}

func (a *App) createRule(c echo.Context) error {
	ctx := c.Request().Context()
	r, err := decodeRule(c, time.Now())
	if err != nil {
		return err
	}
	out, err := a.opts.Server.CreateRule(ctx, r, safety.OperatorID)
	if err != nil {
		return a.ruleFailed(ctx, "", err)
	}
	return a.ruleView(c, http.StatusCreated, out.ID)
}

// currentRule reads rule id before a change: 404 when there is none, 409 when
// it was revoked (a revoked rule stays revoked; make a new one).
func (a *App) currentRule(ctx context.Context, id string) error {
	view, _, err := a.opts.Server.RuleDetail(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return a.ruleFailed(ctx, id, err)
	}
	if err != nil {
		return err
	}
	if view.RevokedAt != nil {
		return apiError(http.StatusConflict, fmt.Sprintf("rule %s was revoked by %s at %s; a revoked rule stays revoked: create a new one",
			id, view.RevokedBy, view.RevokedAt.UTC().Format(time.RFC3339)), map[string]string{"reason": "revoked"})
	}
	return nil
}

func (a *App) updateRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := a.currentRule(ctx, id); err != nil {
		return err
	}
	r, err := decodeRule(c, time.Now())
	if err != nil {
		return err
	}
	out, err := a.opts.Server.UpdateRule(ctx, id, r, safety.OperatorID)
	if err != nil {
		return a.ruleFailed(ctx, id, err)
	}
	return a.ruleView(c, http.StatusOK, out.ID)
}

func (a *App) revokeRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := a.currentRule(ctx, id); err != nil {
		return err
	}
	if _, err := a.opts.Server.RevokeRule(ctx, id, safety.OperatorID); err != nil {
		return a.ruleFailed(ctx, id, err)
	}
	return a.ruleView(c, http.StatusOK, id)
}

// ruleCaller is one caller a rule can be for, as the console's form offers them.
type ruleCaller struct {
	// For is what to send as the rule's "for".
	For   string `json:"for"`
	Label string `json:"label"`
	// Principal is the principal id the rule will carry.
	Principal string     `json:"principal"`
	MaxTier   string     `json:"max_tier"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// CanCallRed is false for a token whose ceiling is below RED: it is
	// refused every RED call before any rule is looked at.
	CanCallRed bool `json:"can_call_red"`
}

type ruleArg struct {
	Name        string `json:"name"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required"`
}

type ruleTool struct {
	Name  string    `json:"name"`
	Title string    `json:"title"`
	Args  []ruleArg `json:"args"`
}

// ruleOptions answers GET /api/rules/options: whom a rule can be for (live
// agent tokens and operators), the RED tools with the arguments they take,
// and the triggers.
func (a *App) ruleOptions(c echo.Context) error {
	ctx := c.Request().Context()
	toks, err := a.opts.Store.ListTokens(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	callers := []ruleCaller{{For: store.RuleOperators, Label: "operators (the console login and stdio)", Principal: store.RuleOperators,
		MaxTier: safety.Red.String(), CanCallRed: true}}
	names := map[string]int{}
	for _, t := range toks {
		if t.RevokedAt == nil && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)) {
			names[t.Name]++
		}
	}
	for _, t := range toks {
		if t.RevokedAt != nil || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
			continue
		}
		c := ruleCaller{For: t.ID, Label: fmt.Sprintf("%s (%s)", t.Name, t.ID), Principal: "agent:" + t.Name + "/" + t.ID,
			MaxTier: t.MaxTier, CanCallRed: t.MaxTier == safety.Red.String()}
		if !t.ExpiresAt.IsZero() {
			exp := t.ExpiresAt
			c.ExpiresAt = &exp
		}
		callers = append(callers, c)
	}
	var red []ruleTool
	for _, t := range a.opts.Server.AllTools() {
		if t.Tier != safety.Red {
			continue
		}
		rt := ruleTool{Name: t.Name, Title: t.Title, Args: []ruleArg{}}
		// As callers see it: with several clusters, with the cluster argument
		// every call passes, so a rule can name it.
		if s := a.opts.Server.InputSchema(t); s != nil {
			for name, prop := range s.Properties {
				if name == "approval_id" {
					continue
				}
				arg := ruleArg{Name: name, Required: slices.Contains(s.Required, name)}
				if prop != nil {
					arg.Type, arg.Description = prop.Type, prop.Description
					if arg.Type == "" && len(prop.Types) > 0 {
						arg.Type = strings.Join(prop.Types, "|")
					}
				}
				rt.Args = append(rt.Args, arg)
			}
			slices.SortFunc(rt.Args, func(x, y ruleArg) int { return strings.Compare(x.Name, y.Name) })
		}
		red = append(red, rt)
	}
	slices.SortFunc(red, func(x, y ruleTool) int { return strings.Compare(x.Name, y.Name) })
	if red == nil {
		red = []ruleTool{}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"callers":  callers,
		"tools":    red,
		"triggers": store.AlertKinds(),
		"limits": map[string]any{
			"per_target_per_hour": ruleMaxPerHour, "max_failures": ruleMaxFailures,
			"max_lifetime_hours": int(ruleMaxLifetime.Hours()),
		},
	})
}

// mountRules adds the rules routes to the operator group.
func (a *App) mountRules(api *echo.Group) {
	api.GET("/rules", a.listRules)
	api.GET("/rules/options", a.ruleOptions)
	api.GET("/rules/:id", a.getRule)
	api.POST("/rules", a.createRule)
	api.PUT("/rules/:id", a.updateRule)
	api.DELETE("/rules/:id", a.revokeRule)
}
