package store_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/wal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const followChildEnv = "POSSUM_TEST_FOLLOW_CHILD"

func init() { child.Register(followChildEnv, runFollowChild) }

// runFollowChild follows the store named by "dir:n" with notifications
// alone (the timer's safety net is an hour away), prints each position it
// delivers, and once it has n and has seen the kernel report an overflow
// (or given up on it after 30 seconds), prints its counts and exits.
func runFollowChild(arg string) {
	i := strings.LastIndexByte(arg, ':')
	n, _ := strconv.ParseUint(arg[i+1:], 10, 64)
	f, err := store.Follow(arg[:i], &store.FollowOptions{Poll: time.Hour})
	if err == nil {
		w := bufio.NewWriter(os.Stdout)
		for e, rerr := range f.Subscribe(context.Background(), dcb.All(), 0) {
			if err = rerr; err != nil {
				break
			}
			fmt.Fprintln(w, e.Position)
			if e.Position == n {
				// The overflow is the last of the queued notifications.
				for deadline := time.Now().Add(30 * time.Second); f.Stats().Overflows == 0 && time.Now().Before(deadline); {
					runtime.Gosched()
				}
				st := f.Stats()
				fmt.Fprintln(w, "overflows", st.Overflows, "notifications", st.Notifications, "polls", st.Polls)
				w.Flush()
				os.Exit(0)
			}
			if e.Position <= 101 {
				w.Flush() // the parent waits for these before stalling us
			}
		}
	}
	fmt.Println("error", err)
	os.Exit(1)
}

// TestFollowerSurvivesOverflow stalls a follower in another process
// (SIGSTOP) while far more notifications are due than the inotify queue
// holds, so the kernel drops some: once resumed, it still delivers every
// event once, in order.
func TestFollowerSurvivesOverflow(t *testing.T) {
	t.Parallel()
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		limit, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	appends := min(limit+4000, 100_000)
	dir := t.TempDir()
	s, err := store.Open(dir, &store.Options{NoSync: true, Projection: &store.Projection{}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for range 100 {
		appendOK(t, s, ev("Before"))
	}
	n := 101 + appends
	cmd := child.Command(followChildEnv, fmt.Sprintf("%s:%d", dir, n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()
	sc := bufio.NewScanner(out)
	next := uint64(1)
	line := func() string {
		require.True(t, sc.Scan(), "the follower stopped early")
		return sc.Text()
	}
	for next <= 100 {
		require.Equal(t, strconv.FormatUint(next, 10), line())
		next++
	}
	// Position 101, appended now, reaches the follower only once it
	// watches the offsets file (it looks once more right after the watch
	// begins; its timer is an hour away): stalled before that, it would
	// watch only after the stall, and no notification would queue.
	appendOK(t, s, ev("Watched"))
	require.Equal(t, "101", line())
	next++

	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	// kill returns before a busy process is stopped: one that still ran
	// would read the first notifications below, and the queue might not
	// fill.
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(stat)
		// The state follows the command's name, in parentheses.
		i := bytes.LastIndexByte(b, ')')
		return err == nil && i >= 0 && i+2 < len(b) && b[i+2] == 'T'
	}, time.Minute, time.Millisecond, "the follower never stopped")
	// The follower watches the offsets file, and the kernel merges a
	// notification into the one queued before it when they are alike: a
	// change of mode after each append keeps them apart, so they fill the
	// queue.
	offsets := filepath.Join(dir, "wal", wal.OffsetsFile)
	for i := range appends {
		appendOK(t, s, ev("During", fmt.Sprint("i:", i%7)))
		require.NoError(t, os.Chmod(offsets, os.FileMode(0o640|(i%2)<<2)))
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	for next <= uint64(n) {
		require.Equal(t, strconv.FormatUint(next, 10), line(), "every position once, in order")
		next++
	}
	var overflows int
	last := line()
	t.Log(last)
	_, err = fmt.Sscanf(last, "overflows %d", &overflows)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait(), "stderr: %s", stderr.String())
	t.Logf("%d appends while stalled (inotify queue %d): %d overflows reported", appends, limit, overflows)
	if limit+4000 <= 100_000 {
		assert.Positive(t, overflows, "the kernel's queue overflowed")
	}
}
