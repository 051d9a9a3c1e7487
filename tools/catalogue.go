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
	"errors"
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
	// Policy is the protection configuration (JARVIS_PROTECTED_*), the same
	// value the server decides with: execute_ssh checks commands against it
	// (Policy.CheckCommand). Its fields are promoted: env.ProtectedNodes, ….
	safety.Policy
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
	// Tier, when set, overrides the tool's declared tier for this call; only
	// execute_ssh uses it (its tier is the command classifier's verdict).
	Tier safety.Tier
	// Reads marks a call above GREEN that only reads (a read-only SSH command):
	// reads of protected resources are allowed.
	Reads bool
	// Refusal, when set, is a refusal decided while preparing (the command
	// classifier blocked it); the call never runs.
	Refusal *safety.Verdict
	// Run executes the call. Its result is the tool's structured output.
	Run func(ctx context.Context, progress Progress) (any, error)
}

// Tool is one entry of the catalogue.
type Tool struct {
	Name        string
	Title       string
	Description string
	Tier        safety.Tier

	InputSchema  *jsonschema.Schema
	OutputSchema *jsonschema.Schema

	inputResolved *jsonschema.Resolved
	prepare       func(ctx context.Context, env *Env, raw json.RawMessage) (*Call, error)
}

// InputError is an argument the caller got wrong. Its message says what to fix.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Prepare validates raw arguments against the tool's input schema, decodes them and
// lets the tool resolve its target. Nothing has touched the cluster's state yet.
func (t *Tool) Prepare(ctx context.Context, env *Env, raw json.RawMessage) (*Call, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, inputErrorf("arguments are not valid JSON: %v", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, inputErrorf("arguments must be a JSON object")
	}
	if err := t.inputResolved.Validate(generic); err != nil {
		return nil, inputErrorf("invalid arguments for %s: %v", t.Name, err)
	}
	return t.prepare(ctx, env, raw)
}

// spec is what each tool file declares about a tool.
type spec struct {
	name, title, description string
	tier                     safety.Tier
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
		InputSchema:   in,
		OutputSchema:  out,
		inputResolved: resolved,
		prepare: func(ctx context.Context, env *Env, raw json.RawMessage) (*Call, error) {
			var input In
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&input); err != nil {
				return nil, inputErrorf("invalid arguments for %s: %v", sp.name, err)
			}
			return prepare(ctx, env, input)
		},
	}
}

// Catalogue returns every tool Jarvis offers, in a stable order. BLACK tools are not
// here: they are never registered, and dispatch refuses them by name.
func Catalogue() []*Tool {
	all := []*Tool{}
	all = append(all, readTools()...)
	all = append(all, lifecycleTools()...)
	all = append(all, snapshotTools()...)
	all = append(all, systemTools()...)
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

// errNoSSH is returned by SSH tools when SSH is not configured.
var errNoSSH = errors.New("SSH is not configured: set SSH_KEY_PATH and SSH_KNOWN_HOSTS (see .env.example) to use the node tools")
