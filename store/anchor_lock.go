//go:build unix

package store

import (
	"os"
	"syscall"
)

// lockAnchor takes the lock every process's checkpoints share: an exclusive
// flock on DB_PATH.anchor.lock (not on the anchor itself, which each
// checkpoint replaces by renaming a new file over it). The lock ends with the
// returned function, or with the process.
func lockAnchor(anchorPath string) (unlock func(), err error) {
	f, err := os.OpenFile(anchorPath+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
