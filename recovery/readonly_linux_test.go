package recovery_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The child process of TestVerifyReadOnlyMount: the environment names the
// store and an empty mount point.
const (
	roStoreEnv = "POSSUM_TEST_RO_STORE"
	roMountEnv = "POSSUM_TEST_RO_MOUNT"
)

func init() {
	child.Register(roStoreEnv, func(src string) { os.Exit(verifyReadOnlyChild(src, os.Getenv(roMountEnv))) })
}

func TestMain(m *testing.M) { child.Main(m) }

// roResult is what the child reports on its stdout.
type roResult struct {
	MountErr string           `json:"mount_err,omitempty"`
	ProbeErr string           `json:"probe_err"` // writing into the mount
	Err      string           `json:"err,omitempty"`
	Locked   bool             `json:"locked"` // Err wraps store.ErrLocked
	Report   *recovery.Report `json:"report,omitempty"`
}

// verifyReadOnlyChild runs in its own mount namespace (its parent started it
// with CLONE_NEWNS; Go makes the namespace's mounts private, so nothing
// leaks out, and the mount goes with the process). It bind-mounts src
// read-only at mnt and verifies the store through mnt.
func verifyReadOnlyChild(src, mnt string) int {
	var res roResult
	err := unix.Mount(src, mnt, "", unix.MS_BIND, "")
	if err == nil {
		err = unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
	}
	if err != nil {
		res.MountErr = err.Error()
	} else {
		// Root ignores permission bits but not a read-only mount: prove
		// the store cannot be written, or the test proves nothing.
		if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o640); err != nil {
			res.ProbeErr = err.Error()
		}
		res.Report, err = recovery.Verify(mnt, nil)
		if err != nil {
			res.Err, res.Locked = err.Error(), errors.Is(err, store.ErrLocked)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// verifyReadOnlyMount verifies the store in src through a read-only bind
// mount of it, in a child process with its own mount namespace.
func verifyReadOnlyMount(t *testing.T, src string) roResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roStoreEnv+"="+src, roMountEnv+"="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot create a mount namespace (%v); TestVerifyReadOnlySeam covers the same paths", err)
	}
	require.NoError(t, err, "child: %s", stderr.String())
	var res roResult
	require.NoError(t, json.Unmarshal(out, &res), "child said %q", out)
	if res.MountErr != "" {
		t.Skipf("cannot mount read-only (%s); TestVerifyReadOnlySeam covers the same paths", res.MountErr)
	}
	require.Contains(t, res.ProbeErr, "read-only file system", "the mount must refuse writes")
	return res
}

// possum verify works on a read-only copy of a store (issue 7, defect 6):
// with the shared lock when LOCK exists, without one, and saying so, when
// it does not; a writer holding the lock is seen, and verify checks beside
// it.
func TestVerifyReadOnlyMount(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 10)
	lockPath := filepath.Join(dir, "LOCK")
	require.FileExists(t, lockPath)
	before := testdir.Hash(t, dir)

	t.Run("lock-file-exists", func(t *testing.T) {
		res := verifyReadOnlyMount(t, dir)
		require.Empty(t, res.Err)
		assert.True(t, res.Report.Consistent(), "%+v", res.Report.Problems)
		assert.Equal(t, storedir.LockHeldShared, res.Report.Lock)
	})

	t.Run("writer-holds-lock", func(t *testing.T) {
		s, err := store.Open(dir, nil)
		require.NoError(t, err)
		res := verifyReadOnlyMount(t, dir)
		closeProjected(t, s)
		require.Empty(t, res.Err)
		assert.True(t, res.Report.BesideWriter, "verify through a read-only mount must see the writer's lock: %+v", res)
		assert.True(t, res.Report.Consistent(), "%+v", res.Report.Problems)
	})
	before = testdir.Hash(t, dir) // the writer rewrote its checkpoint

	t.Run("no-lock-file", func(t *testing.T) {
		require.NoError(t, os.Remove(lockPath))
		delete(before, "LOCK")
		res := verifyReadOnlyMount(t, dir)
		require.Empty(t, res.Err)
		assert.True(t, res.Report.Consistent(), "%+v", res.Report.Problems)
		assert.True(t, strings.HasPrefix(res.Report.Lock, "none: "), "lock: %q", res.Report.Lock)
		assert.Contains(t, res.Report.Lock, "read-only file system", "the reason is given")
		assert.NoFileExists(t, lockPath)
	})
	assert.Equal(t, before, testdir.Hash(t, dir), "verify changed the store")
}

// On a writable store Verify reports the shared lock it held.
func TestVerifyReportsLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 5)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, storedir.LockHeldShared, rep.Lock)
}
