//go:build unix

package store_test

import (
	"io"
	"os"
	"testing"

	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/require"
)

const holdChildEnv = "POSSUM_TEST_HOLD_CHILD"

// The hold child does nothing until its stdin closes: it keeps the files it
// was handed open meanwhile.
func init() { child.Register(holdChildEnv, func(string) { _, _ = io.Copy(io.Discard, os.Stdin) }) }

// TestCloseReleasesLockSharedWithAChild: a child process that shares the
// open file of the store's lock (as a fork does until it execs) does not
// keep the store locked once Close returns: a reopen right after
// succeeds.
func TestCloseReleasesLockSharedWithAChild(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	cmd := child.Command(holdChildEnv, "1")
	cmd.ExtraFiles = []*os.File{store.LockFile(s)}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { stdin.Close(); _ = cmd.Wait() }()

	require.NoError(t, s.Close())
	s, err = store.Open(dir, nil)
	require.NoError(t, err, "the lock went with Close, though the child still has its file open")
	require.NoError(t, s.Close())
}
