// Package tools is Jarvis's tool catalogue: every tool's name, tier, typed input and
// output, description for a model, and the code that runs it against the cluster.
//
// A tool does not decide whether it may run. It only prepares a Call: the validated
// input, the resolved target (the guest's real node and kind, never the caller's word
// alone) and a sentence saying what it would do. The server's one dispatch path hands
// that to the safety layer, asks a human when needed, audits, and only then runs it.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// Env is what a tool may use while it prepares and runs.
type Env struct {
	PVE *pve.Client
	// SSH runs commands on nodes; nil when no SSH is configured, and the SSH
	// tools then answer with an error that says how to configure it.
	SSH *sshexec.Executor
	// SSHNodes lists the nodes SSH may reach, for validation messages.
	SSHNodes []string
	// Wake sends Wake-on-LAN packets; nil when none are configured.
	Wake *WakeOnLAN
	// SSHTimeout is execute_ssh's default command timeout.
	SSHTimeout time.Duration
	// Created tells whether Jarvis created a guest (delete_guest); nil means
	// no record is available, and every guest counts as not created by Jarvis.
	Created CreatedGuests
	// Alerts answers list_alerts; nil: no alerts are available.
	Alerts Alerts
}

// Fresh marks ctx so the cluster reads made under it skip the short read cache:
// the safety checks of a changing call are made on the cluster as it is now.
func Fresh(ctx context.Context) context.Context { return pve.WithFresh(ctx) }

// Changed tells the Env that the cluster may have changed outside its API
// client (a command over SSH, a Wake-on-LAN packet): cached reads are dropped.
func (e *Env) Changed() {
	if e.PVE != nil {
		e.PVE.Invalidate()
	}
}

// Progress reports how far a long call has come; the server turns it into an MCP
// progress notification when the client asked for them.
type Progress func(message string, done, total float64)

// A Call is a prepared, validated tool invocation that has not run yet.
type Call struct {
	// Target is what the call acts on, resolved from the cluster.
	Target safety.Target
	// Effect says in words what running the call would do ("Hard stop of running VM
	// 101 'web01' on node pve; the guest OS will not shut down cleanly").
	Effect string
	// Command, when set, is the shell command the call runs on Target.Node
	// (execute_ssh). The tool does not judge it: the safety policy classifies
	// it and checks it against the protected resources.
	Command *safety.Command
	// Also lists the other resources the call touches besides Target: the
	// node a guest migrates to, the VMID and node a clone is created as.
	// Protection applies to each of them as it does to Target.
	Also []safety.Target
	// Tier, when set, is this call's own tier where it depends on the
	// arguments (restore_backup is YELLOW into a new VMID, RED over an
	// existing guest); it is never above the tool's Tier, except BLACK,
	// which refuses the call with TierReason.
	Tier       safety.Tier
	TierReason string
	// Run executes the call. Its result is the tool's structured output.
	Run func(ctx context.Context, progress Progress) (any, error)
}

// GuestCreated is implemented by the result of a call that created a guest
// (clone_guest, restore_backup into a new VMID): the server records it, so
// delete_guest can later check that Jarvis made it. marker is the guest's id
// tag (jarvis-id-…), kept with the record.
type GuestCreated interface {
	CreatedGuest() (node string, vmid int, marker string)
}

// GuestDeleted is implemented by the result of delete_guest: the server forgets
// the record, so a later guest with the same VMID is not taken for Jarvis's.
type GuestDeleted interface{ DeletedGuest() (vmid int) }

// CreatedGuests answers whether Jarvis's own records say it created the
// guest vmid that carries the id tag marker; the server provides it from the
// store (tools do no database I/O).
type CreatedGuests interface {
	CreatedByJarvis(ctx context.Context, vmid int, marker string) (bool, error)
}

// read wraps a read-only fetch into a Call.
func read(target safety.Target, effect string, fetch func(ctx context.Context) (any, error)) *Call {
	return &Call{Target: target, Effect: effect, Run: func(ctx context.Context, _ Progress) (any, error) { return fetch(ctx) }}
}

// Tool is one entry of the catalogue.
type Tool struct {
	Name        string
	Title       string
	Description string
	// Tier is the most a call of the tool can do: annotations, approval_id
	// and read-only mode follow it.
	Tier safety.Tier
	// MinTier is the least a call can do, and so the lowest ceiling that
	// sees the tool and may call it. It equals Tier except for a tool whose
	// tier is decided per call: execute_ssh's read-only commands are YELLOW,
	// its changes RED, and the policy judges each command.
	MinTier safety.Tier
	// Toolset is the group the tool is offered in (JARVIS_TOOLSETS).
	Toolset string

	InputSchema  *jsonschema.Schema
	OutputSchema *jsonschema.Schema

	inputResolved *jsonschema.Resolved
	decode        func(raw json.RawMessage) (any, error)
	prepare       func(ctx context.Context, env *Env, typed any) (*Call, error)
}

// Args are a call's arguments, parsed once at the door: the JSON object as sent,
// numbers kept exact, for the audit log and for binding an approval to exactly
// these arguments.
type Args struct {
	// Object is the arguments object; numbers are json.Number.
	Object map[string]any
	raw    json.RawMessage
}

// ApprovalID is the approval_id argument (RED tools), "" without one.
func (a *Args) ApprovalID() string {
	id, _ := a.Object[approvalIDArg].(string)
	return id
}

// Input is a call's arguments checked against one tool's schema and decoded into
// its typed input; dispatch carries it from the door to the run.
type Input struct {
	*Args
	typed any
}

// approvalIDArg is the argument every RED tool takes on the retry after a
// person approved; define adds it, no input struct declares it.
const approvalIDArg = "approval_id"

// ClusterArg names the cluster a call is for. Only a Jarvis serving several
// clusters lists it (ClusterSchema); dispatch reads it and takes it out before
// the tool decodes its input, so no input struct declares it.
const ClusterArg = "cluster"

// ClusterSchema is in with the cluster argument added: required, one of
// names. The tool list is sent into every model's context, so it is as
// terse as approval_id's and added only when there is a choice to make.
func ClusterSchema(in *jsonschema.Schema, names []string) *jsonschema.Schema {
	out := in.CloneSchemas()
	if out.Properties == nil {
		out.Properties = map[string]*jsonschema.Schema{}
	}
	enum := make([]any, len(names))
	for i, n := range names {
		enum[i] = n
	}
	// No description: the name and the choices say it, and a description
	// would cost every tool ~40 bytes of the list's budget.
	out.Properties[ClusterArg] = &jsonschema.Schema{Type: "string", Enum: enum}
	// CloneSchemas copies the schemas, not these lists.
	out.PropertyOrder = append(slices.Clone(out.PropertyOrder), ClusterArg)
	out.Required = append(slices.Clone(out.Required), ClusterArg)
	return out
}

// InputError is an argument the caller got wrong. Its message says what to fix.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// ParseArgs parses a call's arguments as a JSON object with exact numbers; no
// arguments at all count as {}.
func ParseArgs(raw json.RawMessage) (*Args, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &Args{Object: map[string]any{}, raw: json.RawMessage("{}")}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, inputErrorf("arguments are not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, inputErrorf("arguments are not valid JSON: more than one value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, inputErrorf("arguments must be a JSON object")
	}
	return &Args{Object: m, raw: raw}, nil
}

// Decode checks parsed arguments against the tool's input schema and decodes
// them into its typed input. Nothing touches the cluster.
func (t *Tool) Decode(a *Args) (*Input, error) {
	// The schema validator reads json.Number as a string, so it gets the
	// numbers as float64; that is a walk over the object, not another parse.
	if err := t.inputResolved.Validate(floatNumbers(a.Object)); err != nil {
		return nil, inputErrorf("invalid arguments for %s: %v", t.Name, err)
	}
	typed, err := t.decode(a.raw)
	if err != nil {
		return nil, err
	}
	return &Input{Args: a, typed: typed}, nil
}

// Prepare lets the tool check its decoded input against the cluster and resolve
// its target. It reads the cluster, never changes it; dispatch calls it again
// right before a confirmed call runs, so the target is never stale.
func (t *Tool) Prepare(ctx context.Context, env *Env, in *Input) (*Call, error) {
	return t.prepare(ctx, env, in.typed)
}

// floatNumbers returns v with every json.Number as float64.
func floatNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v // out of range: left a string, so the schema refuses it
		}
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = floatNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = floatNumbers(e)
		}
		return out
	}
	return v
}

// spec is what each tool file declares about a tool.
type spec struct {
	name, title, description string
	tier                     safety.Tier
	// minTier, when set, is the tier of the call's mildest use (see Tool.MinTier).
	minTier safety.Tier
	// adjust refines the inferred input schema: bounds, enums, patterns.
	adjust func(s *jsonschema.Schema)
}

// define builds a Tool from typed input and output. Schemas are inferred from the Go
// types so that what a client sees and what the handler decodes cannot drift apart.
func define[In, Out any](sp spec, prepare func(ctx context.Context, env *Env, in In) (*Call, error)) *Tool {
	in, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("tool %s: input schema: %v", sp.name, err))
	}
	if sp.adjust != nil {
		sp.adjust(in)
	}
	if sp.minTier == 0 {
		sp.minTier = sp.tier
	}
	if sp.minTier > sp.tier {
		panic(fmt.Sprintf("tool %s: minTier %s is above its tier %s", sp.name, sp.minTier, sp.tier))
	}
	if sp.tier == safety.Red {
		// Every call that can be RED may come back with the id of the
		// approval a person granted; dispatch reads it, the tool never sees it.
		in.Properties[approvalIDArg] = &jsonschema.Schema{Type: "string",
			Description: "id of an approval a person granted for exactly this call; leave out on the first call"}
		in.PropertyOrder = append(in.PropertyOrder, approvalIDArg)
	}
	out, err := jsonschema.For[Out](nil)
	if err != nil {
		panic(fmt.Sprintf("tool %s: output schema: %v", sp.name, err))
	}
	portable(in)
	portable(out)
	resolved, err := in.Resolve(nil)
	if err != nil {
		panic(fmt.Sprintf("tool %s: resolving input schema: %v", sp.name, err))
	}
	return &Tool{
		Name:          sp.name,
		Title:         sp.title,
		Description:   sp.description,
		Tier:          sp.tier,
		MinTier:       sp.minTier,
		InputSchema:   in,
		OutputSchema:  out,
		inputResolved: resolved,
		// The schema (additionalProperties: false, case-sensitive names) has
		// refused unknown fields already; approval_id is left for dispatch.
		decode: func(raw json.RawMessage) (any, error) {
			var input In
			if err := json.Unmarshal(raw, &input); err != nil {
				return nil, inputErrorf("invalid arguments for %s: %v", sp.name, err)
			}
			return input, nil
		},
		prepare: func(ctx context.Context, env *Env, typed any) (*Call, error) {
			return prepare(ctx, env, typed.(In))
		},
	}
}

// Catalogue returns every tool Jarvis offers, in a stable order: the order
// clients list them in, pinned by server/testdata/toolsets/*.golden.json. BLACK tools
// are not here: they are never registered, and dispatch refuses them by name.
func Catalogue() []*Tool {
	all := []*Tool{
		// GREEN reads: cluster.go, guests.go, tasks.go, snapshot.go.
		getClusterStatus(), getNodeStatus(), getVMs(), getContainers(), getStorage(), getClusterResources(),
		getRecentTasks(), getBackups(), getGuestStatus(), getTaskStatus(), listSnapshots(),
	}
	all = append(all, lifecycleTools()...)
	all = append(all, createSnapshot(), rollbackSnapshot(), deleteSnapshot())
	// The nodes themselves: over SSH (ssh_command.go, node_health.go,
	// node_services.go) and Wake-on-LAN (wol.go).
	all = append(all, executeSSH(), getNodeTemperature(), getServiceStatus(), getNodeLogs(), restartService(), wakeNode())
	// The weekly operations: reads (ops_read.go), creating things
	// (ops_create.go), changing or removing them (ops_change.go).
	all = append(all, opsReadTools()...)
	all = append(all, opsCreateTools()...)
	all = append(all, opsChangeTools()...)
	// The watcher's open alerts and the rules that cover them (alerts.go).
	all = append(all, listAlerts())
	for _, t := range all {
		t.Toolset = toolsetOf(t.Name)
	}
	return all
}

// property returns the named property schema of an object schema, for adjust funcs.
func property(s *jsonschema.Schema, name string) *jsonschema.Schema {
	p, ok := s.Properties[name]
	if !ok {
		panic(fmt.Sprintf("schema has no property %q", name))
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// portable rewrites what jsonschema-go infers for Go slices and pointers
// ("type": ["null", "array"]) to the plain type: Jarvis never returns null lists,
// and several clients reject type unions.
func portable(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) == 2 && slices.Contains(s.Types, "null") {
		for _, t := range s.Types {
			if t != "null" {
				s.Type = t
			}
		}
		s.Types = nil
	}
	for _, p := range s.Properties {
		portable(p)
	}
	for _, d := range s.Defs {
		portable(d)
	}
	portable(s.Items)
	portable(s.AdditionalProperties)
}
