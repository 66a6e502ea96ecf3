package opossum

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/opossum/opossumtest"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// holdLock takes Opossum's lock of the context dir as an Opossum writer
// would, until the returned function releases it.
func holdLock(t *testing.T, dir string) (release func()) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, lockFile))
	require.NoError(t, err)
	require.NoError(t, platform.Lock(f, true))
	return func() { f.Close() }
}

// Scan waits for an append in progress under Opossum's lock and takes its
// snapshot after it: the event the append wrote before it let go is in it.
func TestScanWaitsForLock(t *testing.T) {
	dir := opossumtest.Copy(t, "damage/ledger-ahead") // ledger 5, files 1..3: an append of 4 and 5 in progress
	release := holdLock(t, dir)
	waiting := make(chan struct{})
	type result struct {
		s   *Snapshot
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Scan(context.Background(), Context{Name: "c", Dir: dir}, ScanOptions{OnLockWait: func() { close(waiting) }})
		done <- result{s, err}
	}()
	select {
	case <-waiting:
	case r := <-done:
		t.Fatalf("Scan did not wait for the lock: %+v", r)
	}
	// The append finishes its files, then lets go.
	copyEvent(t, dir, 3, 4)
	copyEvent(t, dir, 3, 5)
	release()
	r := <-done
	require.NoError(t, r.err)
	assert.True(t, r.s.Locked)
	assert.Equal(t, uint64(5), r.s.Ledger)
	assert.Equal(t, uint64(5), r.s.LastFile)
	assert.Equal(t, uint64(5), r.s.Cut)
}

// copyEvent writes the event file of position from again at position to
// (its "position" left as it is: Scan does not read the files).
func copyEvent(t *testing.T, dir string, from, to uint64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "events", fileName(from)))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events", fileName(to)), b, 0o644))
}

// A lock held longer than LockWait is an error that says who to stop; a
// cancelled context ends the wait.
func TestScanLockHeld(t *testing.T) {
	dir := opossumtest.Copy(t, "current")
	defer holdLock(t, dir)()
	_, err := Scan(context.Background(), Context{Name: "current", Dir: dir}, ScanOptions{LockWait: time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), ".store.lock is held by another process (an Opossum writer)")

	ctx, cancel := context.WithCancel(context.Background())
	_, err = Scan(ctx, Context{Name: "current", Dir: dir}, ScanOptions{OnLockWait: cancel})
	assert.ErrorIs(t, err, context.Canceled)
}

// A store without .store.lock (before 0.4.0) is scanned unlocked, and the
// scan creates no lock file.
func TestScanWithoutLockFile(t *testing.T) {
	dir := opossumtest.Copy(t, "minified")
	s := scan(t, dir)
	assert.False(t, s.Locked)
	assert.NoFileExists(t, filepath.Join(dir, lockFile))
}

// Growth sees what was appended after the snapshot.
func TestGrowth(t *testing.T) {
	dir := opossumtest.Copy(t, "damage/ledger-behind")
	s := scan(t, dir)
	require.Equal(t, uint64(4), s.Cut)
	copyEvent(t, dir, 4, 5)
	copyEvent(t, dir, 4, 6)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ledgerFile), []byte(`{"LastSequencePosition": 6, "EventCount": 6}`), 0o644))
	ledger, last, err := s.Growth()
	require.NoError(t, err)
	assert.Equal(t, uint64(6), ledger)
	assert.Equal(t, uint64(6), last)
	assert.Equal(t, uint64(4), s.Cut, "the snapshot itself is unchanged")
}
