package server

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
)

// Refusal is the structured content of every refused call. Agents and tests rely on
// its shape (ARCHITECTURE.md, "The refusal shape").
type Refusal struct {
	Decision   safety.Decision `json:"decision" jsonschema:"why the call did not run"`
	Tier       string          `json:"tier" jsonschema:"the call's tier: green, yellow, red or black"`
	Reason     string          `json:"reason" jsonschema:"a sentence for the user: what happened and what to do"`
	Plan       string          `json:"plan,omitempty" jsonschema:"what the call would have done"`
	ApprovalID string          `json:"approval_id,omitempty" jsonschema:"with needs_approval: repeat the call with this approval_id once a person approved"`
}

func refusalResult(v safety.Verdict, approvalID string) *mcp.CallToolResult {
	r := Refusal{Decision: v.Decision, Tier: v.Tier.String(), Reason: v.Reason, Plan: v.Plan, ApprovalID: approvalID}
	text := fmt.Sprintf("Refused (%s): %s", v.Decision, v.Reason)
	if v.Decision == safety.NeedsApproval {
		text = fmt.Sprintf("Waiting for a person (needs_approval, approval_id %s): %s", approvalID, v.Reason)
	}
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: text}},
		StructuredContent: r,
	}
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// successResult carries the output both as structured content (checked by clients
// against the output schema) and as JSON text for clients that read text only.
func successResult(out any) *mcp.CallToolResult {
	b, err := json.Marshal(out)
	if err != nil {
		return errorResult(fmt.Sprintf("the result could not be encoded: %v", err))
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: string(b)}},
		StructuredContent: json.RawMessage(b),
	}
}

// monotonic joins the progress series of one call (the wait for approval, then
// the task) into one that only increases, as MCP requires of a progress token:
// a series that starts again (its value falls or its total changes) continues
// past where the last one ended; a value that would not increase is not sent.
func monotonic(send tools.Progress) tools.Progress {
	var mu sync.Mutex
	var base, lastRaw, lastTotal, lastSent float64
	first := true
	return func(msg string, done, total float64) {
		mu.Lock()
		defer mu.Unlock()
		if !first && (done < lastRaw || total != lastTotal) {
			base = lastSent + 1
		}
		lastRaw, lastTotal = done, total
		value := base + done
		if !first && value <= lastSent {
			return
		}
		if total > 0 {
			total += base
		}
		first, lastSent = false, value
		send(msg, value, total)
	}
}
