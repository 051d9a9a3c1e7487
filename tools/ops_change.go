package tools

func opsChangeTools() []*Tool { return nil }

// opsChangeAccess is the Proxmox privileges of these tools (see privileges.go).
var opsChangeAccess = map[string]toolAccess{}
