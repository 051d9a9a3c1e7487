// Package jarvis is the root of Jarvis, an MCP server that lets AI assistants
// and agents operate a Proxmox VE cluster behind one safety layer.
//
// The code lives in the rooms below; ARCHITECTURE.md is the map. This package
// holds no code, only the test that pins which room may import which
// (imports_test.go).
package jarvis
