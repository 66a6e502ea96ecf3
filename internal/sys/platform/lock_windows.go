package platform

import (
	"errors"
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/windows"
)

// Lock locks f whole without waiting (LockFileEx with
// LOCKFILE_FAIL_IMMEDIATELY): exclusive, or shared. A conflicting lock held
// through another handle gives an error wrapping ErrLocked. Closing f
// releases the lock.
func Lock(f *os.File, exclusive bool) error {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	var ol windows.Overlapped // offset 0: the lock covers the whole range below
	err := windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, math.MaxUint32, math.MaxUint32, &ol)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return fmt.Errorf("%w: %s", ErrLocked, f.Name())
	}
	return fmt.Errorf("platform: LockFileEx %s: %w", f.Name(), err)
}

// Unlock releases the lock taken on f and closes f.
func Unlock(f *os.File) error {
	var ol windows.Overlapped
	_ = windows.UnlockFileEx(windows.Handle(f.Fd()), 0, math.MaxUint32, math.MaxUint32, &ol) // closing releases it anyway
	return f.Close()
}

// ReadOnly reports whether err says a file could not be created or opened
// for writing because the medium is write-protected or access is denied.
func ReadOnly(err error) bool {
	return errors.Is(err, windows.ERROR_WRITE_PROTECT) || errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, os.ErrPermission)
}
