package storedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/platform"
)

// ErrLocked: another holder of the store's lock has it: a writer, or, for
// a writer, a verify or repair in progress. It is store.ErrLocked to the
// store's callers (its text names the store, not this package), and every
// error wrapping it adds the directory.
var ErrLocked = errors.New("store: directory in use (open for writing, or being verified or repaired)")

// LockHeldShared is what LockShared says when it took the shared lock.
const LockHeldShared = "shared"

// Lock takes the lock of the store in dir without waiting: exclusive for a
// writer or a repair, shared for a check. A lock held elsewhere, in this
// process or another, gives an error wrapping ErrLocked that names dir.
// The lock belongs to the open file (flock(2), or LockFileEx on Windows),
// so two handles in one process exclude each other too. Unlock releases it.
func Lock(dir string, exclusive bool) (*os.File, error) {
	f, err := openLockFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("storedir: lock file: %w", err)
	}
	if err := lock(f, dir, exclusive); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// LockShared takes the shared lock for a check that changes nothing, also
// on a store that cannot be written (a read-only mount, a backup): there it
// opens the lock file read-only, which is enough for a shared lock, and
// when there is no lock file and none can be created it goes on without a
// lock. It returns the lock (nil for none) and what was taken:
// LockHeldShared, or "none: " and why. A writer holding the lock still
// gives ErrLocked.
func LockShared(dir string) (*os.File, string, error) {
	path := filepath.Join(dir, LockFile)
	f, err := openLockFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil && platform.ReadOnly(err) {
		rwErr := err
		f, err = openLockFile(path, os.O_RDONLY, 0)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Sprintf("none: no %s file and none can be created (%v)", LockFile, rwErr), nil
		case err != nil && platform.ReadOnly(err):
			return nil, fmt.Sprintf("none: %s cannot be opened (%v)", LockFile, err), nil
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("storedir: lock file: %w", err)
	}
	if err := lock(f, dir, false); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, LockHeldShared, nil
}

// Unlock releases a lock Lock or LockShared took, and closes its file.
func Unlock(f *os.File) error { return platform.Unlock(f) }

// openLockFile opens the lock file; a test replaces it to fail as a
// read-only file system does where it cannot mount one.
var openLockFile = os.OpenFile

func lock(f *os.File, dir string, exclusive bool) error {
	err := platform.Lock(f, exclusive)
	if errors.Is(err, platform.ErrLocked) {
		return fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	if err != nil {
		return fmt.Errorf("storedir: lock %s: %w", f.Name(), err)
	}
	return nil
}
