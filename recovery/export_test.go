package recovery

import (
	"os"
	"testing"
)

// SetOpenLockFile replaces how Lock and Verify open the LOCK file until the
// test ends. Tests using it must not run in parallel.
func SetOpenLockFile(t testing.TB, open func(name string, flag int, perm os.FileMode) (*os.File, error)) {
	orig := openLockFile
	openLockFile = open
	t.Cleanup(func() { openLockFile = orig })
}
