//go:build unix

package opossum

import (
	"os"

	"golang.org/x/sys/unix"
)

// sharingViolation is false: outside Windows, .NET's FileShare.None is an
// flock, and a held one makes the lock fail, not the open.
func sharingViolation(error) bool { return false }

// canWaitForLock says waitForLock waits in the kernel: polling would
// starve behind an Opossum process that appends without pause, taking the
// lock again the moment it let go.
const canWaitForLock = true

// waitForLock takes flock(LOCK_EX) on f, waiting until it is free.
func waitForLock(f *os.File) error {
	for {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != unix.EINTR {
			return err
		}
	}
}
