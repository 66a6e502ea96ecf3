package storedir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockShared: a check's shared lock, also where the lock file cannot
// be opened for writing (a seam fails such opens with EROFS, as a
// read-only mount does, and passes read-only opens through): a writer's
// lock is still seen; without a writer the read-only file is locked
// shared; without a lock file the check goes on without a lock and says
// why. A writer cannot lock such a store.
func TestLockShared(t *testing.T) {
	dir := t.TempDir()
	writer, err := Lock(dir, true)
	require.NoError(t, err)
	orig := openLockFile
	t.Cleanup(func() { openLockFile = orig })
	openLockFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE) != 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
		}
		return os.OpenFile(name, flag, perm)
	}

	_, _, err = LockShared(dir)
	assert.ErrorIs(t, err, ErrLocked, "the read-only lock file is still locked by the writer")
	require.NoError(t, Unlock(writer))

	f, how, err := LockShared(dir)
	require.NoError(t, err)
	assert.Equal(t, LockHeldShared, how)
	_, err = Lock(dir, true)
	require.ErrorIs(t, err, syscall.EROFS, "a writer cannot lock a read-only store")
	require.NoError(t, Unlock(f))

	require.NoError(t, os.Remove(filepath.Join(dir, LockFile)))
	f, how, err = LockShared(dir)
	require.NoError(t, err)
	assert.Nil(t, f)
	assert.True(t, strings.HasPrefix(how, "none: "), how)
	assert.Contains(t, how, "read-only file system", "the reason is given")
	assert.NoFileExists(t, filepath.Join(dir, LockFile))
}
