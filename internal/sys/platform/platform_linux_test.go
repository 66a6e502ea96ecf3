package platform

import (
	"io/fs"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The nice value lands on the calling thread, not the process.
func TestLowerThreadPriority(t *testing.T) {
	type result struct {
		thread, process int
		err             error
	}
	// The test's own thread is locked too, so the two are different threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	require.NoError(t, err)
	done := make(chan result)
	go func() {
		// Never unlocked: the thread exits with the goroutine, so its
		// priority cannot leak into another test.
		runtime.LockOSThread()
		var r result
		if r.err = LowerThreadPriority(7); r.err == nil {
			// getpriority(2) returns 20 - nice.
			r.thread, r.err = unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
			r.thread = 20 - r.thread
		}
		done <- r
	}()
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 7, r.thread)
	after, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	require.NoError(t, err)
	assert.Equal(t, before, after, "another thread keeps its priority")
}

func TestReadOnlyErrors(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EROFS, unix.EACCES, unix.EPERM} {
		assert.True(t, ReadOnly(&fs.PathError{Op: "open", Path: "LOCK", Err: errno}), "%v", errno)
	}
	assert.False(t, ReadOnly(&fs.PathError{Op: "open", Path: "LOCK", Err: unix.EIO}))
}
