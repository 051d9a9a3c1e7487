package server

import (
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/jarvis-homelab/jarvis/safety"
)

// principalKey is where the caller's identity travels in the token info the
// MCP SDK hands from the bearer-token check to the tool handlers.
const principalKey = "jarvis.principal"

// TokenInfo is what the web layer's bearer-token check returns for a verified
// caller: the principal itself, typed, so nothing is encoded on one side and
// decoded on the other.
func TokenInfo(p safety.Principal, expires time.Time) *auth.TokenInfo {
	return &auth.TokenInfo{UserID: p.ID, Expiration: expires, Extra: map[string]any{principalKey: p}}
}

// PrincipalFromToken returns the caller that TokenInfo recorded, or false when
// the request carries no (valid) caller.
func PrincipalFromToken(ti *auth.TokenInfo) (safety.Principal, bool) {
	if ti == nil {
		return safety.Principal{}, false
	}
	p, ok := ti.Extra[principalKey].(safety.Principal)
	if !ok || p.ID == "" || p.ID != ti.UserID || !p.Kind.Valid() || !p.MaxTier.Valid() {
		return safety.Principal{}, false
	}
	return p, true
}
