package tools

// The weekly operations' reads, all GREEN: a guest's configuration and what
// its guest agent sees (ops_read_guest.go), metrics history
// (ops_read_metrics.go), a storage's content (ops_read_storage.go), a task's
// log (ops_read_tasks.go) and the cluster's health in one answer
// (ops_read_health.go).

func opsReadTools() []*Tool {
	return []*Tool{getGuestConfig(), getGuestAgentInfo(), getMetricsHistory(), listStorageContent(), getTaskLog(), getClusterHealth()}
}

// opsReadAccess is the Proxmox privileges of these tools (see privileges.go),
// from the "permissions" of each endpoint in the API schema and, where PVE
// filters rather than refuses, from its code: a storage's content shows a
// guest's disks only with VM.Config.Disk on the guest (or Datastore.Allocate
// on the storage), replication jobs only of guests with VM.Audit.
var opsReadAccess = map[string]toolAccess{
	"get_guest_config": {"guest details", []Privilege{seeGuests, readGuest}},
	"get_guest_agent_info": {"guest details", []Privilege{seeGuests,
		priv("/vms/{vmid}", "to list a container's interfaces (GET /nodes/{node}/lxc/{vmid}/interfaces)", "VM.Audit"),
		priv("/vms/{vmid}", "to ask a VM's QEMU guest agent for its interfaces, host name and OS", "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted")}},
	"get_metrics_history": {"metrics", []Privilege{seeGuests,
		priv("/vms/{vmid}", "to read a guest's metrics history (rrddata)", "VM.Audit"),
		priv("/nodes/{node}", "to read a node's metrics history (rrddata)", "Sys.Audit")}},
	"list_storage_content": {"storage content", []Privilege{seeStorage, backupSpace, backupGuest,
		{Path: "/vms/{vmid}", AnyOf: []string{"VM.Config.Disk"}, Unless: &allocate,
			For: "PVE shows a guest's disk images in a storage's content only with it, or with Datastore.Allocate on the storage"}}},
	"get_task_log": {"tasks", []Privilege{priv("/nodes/{node}", "to read the log of tasks the token did not start", "Sys.Audit")}},
	"get_cluster_health": {"cluster health", []Privilege{
		priv("/", "to read HA's status and resources", "Sys.Audit"),
		priv("/", "to read Ceph's health where Ceph is installed", "Sys.Audit", "Datastore.Audit"),
		priv("/vms/{vmid}", "to see replication jobs: PVE lists only those of guests with VM.Audit", "VM.Audit"),
		priv("/nodes/{node}", "to list a node's pending updates (GET /nodes/{node}/apt/update)", "Sys.Modify")}},
}
