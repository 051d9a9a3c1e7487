package store

import (
	"encoding/json"
	"strings"
)

// One Jarvis may serve several Proxmox clusters. With several, every call
// names its cluster in its arguments ("cluster":"lab"), so the audit row's
// hashed arguments, an approval's binding and a rule's allowed arguments
// carry it already. The cluster columns (schema version 2) repeat it where
// it is searched; "" is a call with no cluster argument: the only cluster of
// an installation with one, and every row from before clusters.

// clusterArg is the argument that names a call's cluster.
const clusterArg = "cluster"

// clusterOfArgs is the cluster a call's canonical arguments name: the string
// value of their top-level "cluster" member, else "". The audit log's cluster
// column is this of the row's arguments, checked by AuditVerify, so it must
// never change for a given text.
//
// A refused call's arguments may name any cluster: the value is made
// storable (a JSON \u0000 decodes to a NUL) and cut to maxClusterColumn
// bytes, so the column's index on PostgreSQL (at most about 2,700 bytes a
// row) never refuses the row; the arguments keep it whole.
func clusterOfArgs(args string) string {
	if !strings.Contains(args, `"`+clusterArg+`"`) {
		return "" // most calls: no cluster argument, no JSON decoding
	}
	var members map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &members) != nil {
		return ""
	}
	var c string
	if json.Unmarshal(members[clusterArg], &c) != nil {
		return ""
	}
	return truncateUTF8(cleanText(c), maxClusterColumn)
}

// maxClusterColumn is the longest cluster column kept; names a Jarvis
// serves have at most 32 characters.
const maxClusterColumn = 200

// ruleCluster is the one cluster a rule's arguments allow, else "" (none
// named, several, or any).
func ruleCluster(args map[string][]string) string {
	if v := args[clusterArg]; len(v) == 1 && v[0] != "*" {
		return v[0]
	}
	return ""
}
