package tools

func opsCreateTools() []*Tool { return nil }

// opsCreateAccess is the Proxmox privileges of these tools (see privileges.go).
var opsCreateAccess = map[string]toolAccess{}
