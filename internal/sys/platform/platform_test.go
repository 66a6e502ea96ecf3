package platform

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openLockFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// Two handles in one process behave as two processes: the lock belongs to
// the open file.
func TestLockExclusion(t *testing.T) {
	for _, c := range []struct {
		name          string
		first, second bool // exclusive?
		conflict      bool
	}{
		{"exclusive-exclusive", true, true, true},
		{"exclusive-shared", true, false, true},
		{"shared-exclusive", false, true, true},
		{"shared-shared", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "LOCK")
			a, b := openLockFile(t, path), openLockFile(t, path)
			require.NoError(t, Lock(a, c.first))
			err := Lock(b, c.second)
			if !c.conflict {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrLocked)
			assert.Contains(t, err.Error(), path)
			// Closing the holder releases the lock.
			require.NoError(t, a.Close())
			require.NoError(t, Lock(b, c.second))
		})
	}
}

// A file opened read-only can take the shared lock, and it keeps a writer
// out: what a verify of a read-only copy relies on.
func TestLockReadOnlyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	require.NoError(t, os.WriteFile(path, nil, 0o640))
	ro, err := os.Open(path)
	require.NoError(t, err)
	defer ro.Close()
	require.NoError(t, Lock(ro, false))
	require.ErrorIs(t, Lock(openLockFile(t, path), true), ErrLocked)
}

func TestSync(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "data"))
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write([]byte("durable"))
	require.NoError(t, err)
	require.NoError(t, DataSync(f))
	require.NoError(t, SyncDir(dir))
	require.NoError(t, SyncFS(dir))

	require.NoError(t, f.Close())
	assert.Error(t, DataSync(f), "a closed file cannot be synced")
	missing := filepath.Join(dir, "missing")
	assert.Error(t, SyncFS(missing))
	if runtime.GOOS != "windows" { // SyncDir does nothing there
		assert.Error(t, SyncDir(missing))
	}
}

func TestReadOnly(t *testing.T) {
	_, err := os.Open(filepath.Join(t.TempDir(), "missing"))
	assert.False(t, ReadOnly(err), "a missing file is not a read-only file system")
	assert.False(t, ReadOnly(nil))
}
