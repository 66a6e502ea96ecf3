//go:build unix

package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock locks f whole without waiting (flock(2) with LOCK_NB): exclusive, or
// shared. A conflicting lock held through another open file gives an error
// wrapping ErrLocked. Closing f releases the lock.
func Lock(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return fmt.Errorf("%w: %s", ErrLocked, f.Name())
		}
		return fmt.Errorf("platform: flock %s: %w", f.Name(), err)
	}
}

// Unlock releases the lock taken on f and closes f. The lock belongs to the
// open file, which a child process this one forks shares until it execs:
// closing f alone would leave the lock held that long, and an Open of the
// same directory right after would be refused. flock(LOCK_UN) releases it
// for every sharer.
func Unlock(f *os.File) error {
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN) // closing releases it anyway
	return f.Close()
}

// ReadOnly reports whether err says a file could not be created or opened
// for writing because the file system is read-only or access is denied.
func ReadOnly(err error) bool {
	return errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}
