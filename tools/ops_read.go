package tools

func opsReadTools() []*Tool { return nil }

// opsReadAccess is the Proxmox privileges of these tools (see privileges.go).
var opsReadAccess = map[string]toolAccess{}
