package pvesim

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// param declares one query/form parameter the way PVE's JSON schema does.
type param struct {
	typ      string // string, integer, boolean
	required bool
	enum     []string // allowed values, if restricted
	min      *int
}

var (
	str     = param{typ: "string"}
	num     = param{typ: "integer"}
	flag    = param{typ: "boolean"}
	minVMID = 100
	vmidP   = param{typ: "integer", min: &minVMID}
)

// endpoint is one method on one path.
type endpoint struct {
	params  map[string]param
	privs   string // privilege a write needs; "" for reads
	handler func(s *Sim, c *call) response
}

type route struct {
	pattern []string // "{name}" segments are variables
	methods map[string]endpoint
}

// call is one request after auth, routing and parameter checks.
type call struct {
	method string
	path   string
	vars   map[string]string
	params map[string]string
	user   string // token id, as PVE shows it in UPIDs
}

func (c *call) vmid() int {
	v, _ := strconv.Atoi(c.vars["vmid"])
	return v
}

var powerParams = map[string]map[string]map[string]param{
	"qemu": {
		"start": {"force-cpu": str, "machine": str, "migratedfrom": str, "migration_network": str, "migration_type": {typ: "string", enum: []string{"secure", "insecure"}},
			"nets-host-mtu": str, "skiplock": flag, "stateuri": str, "targetstorage": str, "timeout": num, "with-conntrack-state": flag},
		"stop":     {"keepActive": flag, "migratedfrom": str, "overrule-shutdown": flag, "skiplock": flag, "timeout": num},
		"shutdown": {"forceStop": flag, "keepActive": flag, "skiplock": flag, "timeout": num},
		"reboot":   {"timeout": num},
	},
	"lxc": {
		"start":    {"debug": flag, "skiplock": flag},
		"stop":     {"overrule-shutdown": flag, "skiplock": flag},
		"shutdown": {"forceStop": flag, "timeout": num},
		"reboot":   {"timeout": num},
	},
}

var contentTypes = []string{"backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl"}

func buildRoutes() []route {
	r := []route{
		{pattern: seg("version"), methods: map[string]endpoint{"GET": {handler: (*Sim).getVersion}}},
		{pattern: seg("cluster/status"), methods: map[string]endpoint{"GET": {handler: (*Sim).getClusterStatus}}},
		{pattern: seg("cluster/resources"), methods: map[string]endpoint{"GET": {
			params:  map[string]param{"type": {typ: "string", enum: []string{"vm", "storage", "node", "sdn"}}},
			handler: (*Sim).getClusterResources}}},
		{pattern: seg("cluster/tasks"), methods: map[string]endpoint{"GET": {handler: (*Sim).getClusterTasks}}},
		{pattern: seg("nodes"), methods: map[string]endpoint{"GET": {handler: (*Sim).getNodes}}},
		{pattern: seg("nodes/{node}/status"), methods: map[string]endpoint{"GET": {handler: (*Sim).getNodeStatus}}},
		{pattern: seg("nodes/{node}/storage"), methods: map[string]endpoint{"GET": {
			params:  map[string]param{"content": str, "enabled": flag, "format": flag, "storage": str, "target": str},
			handler: (*Sim).getNodeStorage}}},
		{pattern: seg("nodes/{node}/storage/{storage}/content"), methods: map[string]endpoint{"GET": {
			params:  map[string]param{"content": {typ: "string", enum: contentTypes}, "vmid": vmidP},
			handler: (*Sim).getStorageContent}}},
		{pattern: seg("nodes/{node}/tasks"), methods: map[string]endpoint{"GET": {
			params: map[string]param{"errors": flag, "limit": num, "since": num, "source": {typ: "string", enum: []string{"archive", "active", "all"}},
				"start": num, "statusfilter": str, "typefilter": str, "until": num, "userfilter": str, "vmid": vmidP},
			handler: (*Sim).getNodeTasks}}},
		{pattern: seg("nodes/{node}/tasks/{upid}/status"), methods: map[string]endpoint{"GET": {handler: (*Sim).getTaskStatus}}},
		{pattern: seg("nodes/{node}/tasks/{upid}/log"), methods: map[string]endpoint{"GET": {
			params: map[string]param{"download": flag, "limit": num, "start": num}, handler: (*Sim).getTaskLog}}},
	}
	for _, kind := range []string{"qemu", "lxc"} {
		listParams := map[string]param{}
		if kind == "qemu" {
			listParams["full"] = flag
		}
		snapParams := map[string]param{"snapname": {typ: "string", required: true}, "description": str}
		if kind == "qemu" {
			snapParams["vmstate"] = flag
		}
		r = append(r,
			route{pattern: seg("nodes/{node}/" + kind), methods: map[string]endpoint{"GET": {params: listParams, handler: (*Sim).getGuestList}}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/status/current"), methods: map[string]endpoint{"GET": {handler: (*Sim).getGuestStatus}}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/config"), methods: map[string]endpoint{"GET": {
				params: map[string]param{"current": flag, "snapshot": str}, handler: (*Sim).getGuestConfig}}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/snapshot"), methods: map[string]endpoint{
				"GET":  {handler: (*Sim).getSnapshots},
				"POST": {params: snapParams, privs: "VM.Snapshot", handler: (*Sim).postSnapshot},
			}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/snapshot/{snapname}"), methods: map[string]endpoint{
				"GET":    {handler: (*Sim).getSnapshotIndex},
				"DELETE": {params: map[string]param{"force": flag}, privs: "VM.Snapshot", handler: (*Sim).deleteSnapshot},
			}},
			route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/snapshot/{snapname}/rollback"), methods: map[string]endpoint{
				"POST": {params: map[string]param{"start": flag}, privs: "VM.Snapshot|VM.Snapshot.Rollback", handler: (*Sim).postRollback}}},
		)
		for action, params := range powerParams[kind] {
			r = append(r, route{pattern: seg("nodes/{node}/" + kind + "/{vmid}/status/" + action), methods: map[string]endpoint{
				"POST": {params: params, privs: "VM.PowerMgmt", handler: (*Sim).postPower}}})
		}
	}
	r = append(r, accessRoutes()...)
	// The weekly operations: reads (ops_read.go), creating (ops_create.go),
	// changing and removing (ops_change.go).
	r = append(r, opsReadRoutes()...)
	r = append(r, opsCreateRoutes()...)
	r = append(r, opsChangeRoutes()...)
	return r
}

func seg(p string) []string { return strings.Split(p, "/") }

var routes = buildRoutes()

// match finds the route for the path segments; literal segments win over variables.
func match(segments []string) (*route, map[string]string) {
	var best *route
	var bestVars map[string]string
	bestLiterals := -1
	for i := range routes {
		rt := &routes[i]
		if len(rt.pattern) != len(segments) {
			continue
		}
		vars := map[string]string{}
		literals := 0
		ok := true
		for j, p := range rt.pattern {
			if strings.HasPrefix(p, "{") {
				if segments[j] == "" {
					ok = false
					break
				}
				vars[strings.Trim(p, "{}")] = segments[j]
			} else if p == segments[j] {
				literals++
			} else {
				ok = false
				break
			}
		}
		if ok && literals > bestLiterals {
			best, bestVars, bestLiterals = rt, vars, literals
		}
	}
	return best, bestVars
}

const apiPrefix = "/api2/json"

// handle runs the pipeline PVE runs: auth, injected faults, routing,
// parameter verification, node reachability, permissions, the handler.
// Called under s.mu.
func (s *Sim) handle(r *http.Request) (response, Request) {
	_ = r.ParseForm()
	rec := Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, apiPrefix), Query: r.URL.Query(), Form: r.PostForm}
	if !strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
		return response{status: http.StatusNotFound, reason: "Not Found"}, rec
	}
	tokenID, readOnly, ok := s.authenticate(r.Header.Get("Authorization"))
	if !ok {
		return unauthorized(), rec
	}
	rec.TokenID = tokenID

	if res, injected := s.injected(rec.Path); injected {
		return res, rec
	}

	var segments []string
	for _, raw := range strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix), "/"), "/") {
		p, err := url.PathUnescape(raw)
		if err != nil {
			p = raw
		}
		segments = append(segments, p)
	}
	notImplemented := errorResponse(http.StatusNotImplemented, fmt.Sprintf("Method '%s %s' not implemented", r.Method, rec.Path))
	rt, vars := match(segments)
	if rt == nil {
		return notImplemented, rec
	}
	ep, ok := rt.methods[r.Method]
	if !ok {
		return notImplemented, rec
	}
	c := &call{method: r.Method, path: rec.Path, vars: vars, params: map[string]string{}, user: tokenID}
	if errs := verifyParams(ep.params, vars, r.Form, c.params); len(errs) > 0 {
		return badRequest(errs), rec
	}
	if name, ok := vars["node"]; ok {
		if s.node(name) == nil {
			return errorResponse(http.StatusInternalServerError,
				fmt.Sprintf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", name, name)), rec
		}
		if s.offline[name] {
			// The proxying node cannot reach it; PVE sends only the reason phrase.
			return response{status: 595, reason: "No route to host", body: []byte(`{"data":null}`)}, rec
		}
	}
	if ep.privs != "" && readOnly {
		return errorResponse(http.StatusForbidden, fmt.Sprintf("Permission check failed (/vms/%s, %s)", vars["vmid"], ep.privs)), rec
	}
	if res, denied := s.denied(r.Method, rt, vars, tokenID); denied {
		return res, rec
	}
	return ep.handler(s, c), rec
}

func (s *Sim) authenticate(header string) (tokenID string, readOnly, ok bool) {
	rest, found := strings.CutPrefix(header, "PVEAPIToken=")
	if !found {
		if rest, found = strings.CutPrefix(header, "PVEAPIToken "); !found {
			return "", false, false
		}
	}
	id, secret, found := strings.Cut(strings.TrimSpace(rest), "=")
	if !found {
		return "", false, false
	}
	same := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case id == s.opts.TokenID && same(secret, s.opts.TokenSecret):
		return id, false, true
	case id == s.opts.ReadOnlyTokenID && same(secret, s.opts.ReadOnlyTokenSecret):
		return id, true, true
	}
	return "", false, false
}

// injected consumes a queued FailNext/MalformNext for path, if any.
func (s *Sim) injected(path string) (response, bool) {
	for i, f := range s.failures {
		if strings.HasPrefix(path, f.prefix) {
			s.failures = append(s.failures[:i:i], s.failures[i+1:]...)
			if f.status == http.StatusUnauthorized {
				return response{status: f.status, reason: f.message}, true
			}
			if f.status == 595 || f.status == 596 {
				return response{status: f.status, reason: f.message, body: []byte(`{"data":null}`)}, true
			}
			return errorResponse(f.status, f.message), true
		}
	}
	for i, prefix := range s.malformed {
		if strings.HasPrefix(path, prefix) {
			s.malformed = append(s.malformed[:i:i], s.malformed[i+1:]...)
			return response{status: http.StatusOK, reason: "OK", body: []byte(`{"data":[{"id":"qemu/1`)}, true
		}
	}
	return response{}, false
}

var boolWords = map[string]string{"1": "1", "true": "1", "yes": "1", "on": "1", "0": "0", "false": "0", "no": "0", "off": "0"}

// verifyParams checks path variables and query/form parameters with PVE's
// messages; valid parameters land in out (booleans normalised to 0/1).
func verifyParams(decl map[string]param, vars map[string]string, form url.Values, out map[string]string) map[string]string {
	errs := map[string]string{}
	if v, ok := vars["vmid"]; ok {
		if msg := checkValue(vmidP, v); msg != "" {
			errs["vmid"] = msg
		}
	}
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := decl[name]
		if !ok {
			if _, isVar := vars[name]; isVar {
				continue
			}
			errs[name] = "property is not defined in schema and the schema does not allow additional properties"
			continue
		}
		v := form.Get(name)
		if msg := checkValue(p, v); msg != "" {
			errs[name] = msg
			continue
		}
		if p.typ == "boolean" {
			v = boolWords[strings.ToLower(v)]
		}
		out[name] = v
	}
	for name, p := range decl {
		if _, ok := form[name]; p.required && !ok {
			errs[name] = "property is missing and it is not optional"
		}
	}
	return errs
}

func checkValue(p param, v string) string {
	switch p.typ {
	case "integer":
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", v)
		}
		if p.min != nil && n < *p.min {
			return fmt.Sprintf("value must have a minimum value of %d", *p.min)
		}
	case "boolean":
		if _, ok := boolWords[strings.ToLower(v)]; !ok {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", v)
		}
	}
	if len(p.enum) > 0 {
		for _, e := range p.enum {
			if v == e {
				return ""
			}
		}
		return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(p.enum, ", "))
	}
	return ""
}

var snapNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_\-]*$`)
