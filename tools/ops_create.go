package tools

func opsCreateTools() []*Tool { return nil }

// opsCreateAccess is the Proxmox privileges of these tools (see privileges.go).
var opsCreateAccess = map[string]toolAccess{}

// createdTag marks in Proxmox a guest Jarvis created (clone_guest,
// restore_backup into a new VMID). delete_guest needs it and the store's
// record of the creating call, both; set_guest_notes_tags never adds or
// removes it.
const createdTag = "jarvis-created"
