package tools

// list_storage_content: what one storage holds (ISOs, templates, disk
// images, backups, snippets), newest first.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// storageContentTypes are the content types PVE knows.
var storageContentTypes = []string{"iso", "vztmpl", "images", "rootdir", "backup", "snippets", "import"}

// maxStorageItems caps the list: a backup store holds thousands.
const maxStorageItems = 200

type StorageContentInput struct {
	Storage      string `json:"storage" jsonschema:"storage id, e.g. local or nfs-backup (see get_storage)"`
	Node         string `json:"node,omitempty" jsonschema:"node to list it on; by default the first online node that has it"`
	Content      string `json:"content,omitempty" jsonschema:"only this content type"`
	VMID         int    `json:"vmid,omitempty" jsonschema:"only volumes of this guest"`
	NameContains string `json:"name_contains,omitempty" jsonschema:"only volume ids containing this text (case-insensitive)"`
}

type StorageItemOut struct {
	VolID     string `json:"volid"`
	Content   string `json:"content"`
	Format    string `json:"format"`
	SizeBytes int64  `json:"size_bytes"`
	Size      string `json:"size"`
	Created   string `json:"created,omitempty" jsonschema:"RFC 3339, UTC"`
	VMID      int64  `json:"vmid,omitempty"`
	Notes     string `json:"notes,omitempty"`
}

type StorageContentOut struct {
	Storage    string           `json:"storage"`
	Node       string           `json:"node" jsonschema:"the node it was listed on"`
	Note       string           `json:"note,omitempty"`
	Items      []StorageItemOut `json:"items" jsonschema:"newest first"`
	TotalItems int              `json:"total_items" jsonschema:"volumes matching the filters"`
	Shown      int              `json:"shown" jsonschema:"volumes returned, at most 200"`
}

func listStorageContent() *Tool {
	return define[StorageContentInput, StorageContentOut](spec{
		name: "list_storage_content", title: "Storage content", tier: safety.Green,
		description: "Volumes on one storage (ISOs, container templates, disk images, backups, snippets), newest first, at most 200: size, creation time, owner VMID. Filter by content, vmid or name.",
		adjust: func(s *jsonschema.Schema) {
			property(s, "storage").Pattern = storageRE.String()
			nodeSchema(property(s, "node"))
			enumSchema(property(s, "content"), storageContentTypes...)
			vmidSchema(property(s, "vmid"))
			property(s, "name_contains").MaxLength = ptr(200)
		},
	}, func(ctx context.Context, env *Env, in StorageContentInput) (*Call, error) {
		if !storageRE.MatchString(in.Storage) {
			return nil, inputErrorf("storage %q is not a storage id (see get_storage)", in.Storage)
		}
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		if in.VMID != 0 {
			if err := checkVMID(in.VMID); err != nil {
				return nil, err
			}
		}
		node, note, err := storageNode(ctx, env, in.Storage, in.Node)
		if err != nil {
			return nil, err
		}
		effect := fmt.Sprintf("List the content of storage %s on node %s", in.Storage, node)
		return read(safety.Target{Node: node}, effect, func(ctx context.Context) (any, error) {
			items, err := env.PVE.StorageContent(ctx, node, in.Storage, in.Content)
			if err != nil {
				return nil, nodeError(ctx, env, node, err)
			}
			out := storageContent(items, in)
			out.Node, out.Note = node, note
			return out, nil
		}), nil
	})
}

// storageNode picks the node to list a storage on: the one asked for, else
// the first (by name) that has it available. note says which was picked when
// the storage is each node's own and others hold other volumes.
func storageNode(ctx context.Context, env *Env, storage, node string) (string, string, error) {
	res, err := env.PVE.ClusterResources(ctx, "storage")
	if err != nil {
		return "", "", err
	}
	var rows []pve.Resource
	names := map[string]bool{}
	for _, r := range res {
		names[r.Storage] = true
		if r.Storage == storage {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		known := slices.Sorted(maps.Keys(names))
		return "", "", inputErrorf("there is no storage %q in this cluster (or the token lacks Datastore.Audit on it); storages are: %s", storage, strings.Join(known, ", "))
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Node < rows[j].Node })
	var on []string
	for _, r := range rows {
		on = append(on, r.Node)
	}
	if node != "" {
		if slices.Contains(on, node) {
			return node, "", nil
		}
		if err := unknownFilterNode(ctx, env, node); err != nil {
			return "", "", err
		}
		return "", "", inputErrorf("storage %s is not configured on node %s; it is on %s", storage, node, strings.Join(on, ", "))
	}
	for _, r := range rows {
		if r.Status != "available" {
			continue
		}
		if bool(r.Shared) || len(rows) == 1 {
			return r.Node, "", nil
		}
		return r.Node, fmt.Sprintf("%s is local to each of %s and holds different volumes on each; this is node %s's, pass node for another", storage, strings.Join(on, ", "), r.Node), nil
	}
	return "", "", fmt.Errorf("storage %s is not available on any node now (it is configured on %s; see get_storage)", storage, strings.Join(on, ", "))
}

// storageContent filters, sorts (newest first) and caps a storage's volumes.
func storageContent(items []pve.StorageItem, in StorageContentInput) StorageContentOut {
	out := StorageContentOut{Storage: in.Storage, Items: []StorageItemOut{}}
	needle := strings.ToLower(in.NameContains)
	for _, it := range items {
		if (in.VMID != 0 && int(it.VMID) != in.VMID) || !strings.Contains(strings.ToLower(it.VolID), needle) {
			continue
		}
		out.Items = append(out.Items, StorageItemOut{VolID: it.VolID, Content: it.Content, Format: it.Format,
			SizeBytes: int64(it.Size), Size: humanBytes(int64(it.Size)), Created: unixTime(int64(it.CTime)),
			VMID: int64(it.VMID), Notes: it.Notes})
	}
	sort.SliceStable(out.Items, func(i, j int) bool {
		a, b := out.Items[i], out.Items[j]
		if a.Created != b.Created {
			return a.Created > b.Created // RFC 3339 in UTC sorts as text; none ("") last
		}
		return a.VolID < b.VolID
	})
	out.TotalItems = len(out.Items)
	if len(out.Items) > maxStorageItems {
		out.Items = out.Items[:maxStorageItems]
	}
	out.Shown = len(out.Items)
	return out
}
