//go:build !unix

package store

import "sync"

// anchorMu stands in for the file lock where flock does not exist: the
// checkpoints of this process take turns; Jarvis runs on Linux, where
// processes sharing a database take turns too (anchor_lock.go).
var anchorMu sync.Mutex

func lockAnchor(string) (unlock func(), err error) {
	anchorMu.Lock()
	return anchorMu.Unlock, nil
}
