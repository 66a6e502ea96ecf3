package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const followReadOnlyEnv = "POSSUM_TEST_FOLLOW_RO_CHILD"

func init() { child.Register(followReadOnlyEnv, runFollowReadOnlyChild) }

// runFollowReadOnlyChild runs in its own mount namespace (the parent starts
// it with CLONE_NEWNS, and Go makes the namespace's mounts private). Given
// "src:mnt:n", it bind-mounts the store src read-only at mnt, proves the
// mount refuses writes, follows the store through it, and prints each
// position it delivers up to n, then the positions of a read by tag and
// the cursor it resumed from, kept outside the store.
func runFollowReadOnlyChild(arg string) {
	parts := strings.SplitN(arg, ":", 3)
	src, mnt := parts[0], parts[1]
	n, _ := strconv.ParseUint(parts[2], 10, 64)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fail := func(what string, err error) {
		fmt.Fprintln(w, what, err)
		w.Flush()
		os.Exit(0)
	}
	err := unix.Mount(src, mnt, "", unix.MS_BIND, "")
	if err == nil {
		err = unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
	}
	if err != nil {
		fail("mount-error", err)
	}
	// Root ignores permission bits, not a read-only mount: prove it.
	if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o640); err == nil || !strings.Contains(err.Error(), "read-only file system") {
		fail("writable", err)
	}
	f, err := store.Follow(mnt, nil)
	if err != nil {
		fail("error", err)
	}
	defer f.Close()
	// A consumer of a read-only store keeps its cursor elsewhere.
	cur, err := store.OpenCursor(filepath.Join(os.TempDir(), fmt.Sprintf("possum-ro-cursor-%d", os.Getpid())))
	if err != nil {
		fail("error", err)
	}
	defer os.Remove(cur.Path())
	fmt.Fprintln(w, "ready")
	w.Flush()
	for e, err := range f.Subscribe(context.Background(), dcb.All(), cur.Position()) {
		if err != nil {
			fail("error", err)
		}
		fmt.Fprintln(w, e.Position)
		if err := cur.Save(e.Position); err != nil {
			fail("error", err)
		}
		if e.Position == n {
			break
		}
	}
	var tagged []string
	for e, err := range f.Read(context.Background(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"k:3"}}}}, store.ReadOptions{}) {
		if err != nil {
			fail("error", err)
		}
		tagged = append(tagged, strconv.FormatUint(e.Position, 10))
	}
	fmt.Fprintln(w, "tagged", strings.Join(tagged, ","))
}

// TestFollowerReadOnlyMount: a follower in another process follows a store
// through a read-only bind mount of it while the writer appends: it
// delivers every position once, in order, and answers a read by tag, its
// cursor kept outside the store.
func TestFollowerReadOnlyMount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(dir, &store.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	batch := func(from, n int) {
		events := make([]dcb.Event, n)
		for i := range events {
			events[i] = backlogEvent(from + i)
		}
		_, err := s.Append(t.Context(), events, nil)
		require.NoError(t, err)
	}
	batch(0, 200)

	const n = 500
	cmd := child.Command(followReadOnlyEnv, fmt.Sprintf("%s:%s:%d", dir, t.TempDir(), n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot create a mount namespace (%v)", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan(), "the child said nothing")
	if first := sc.Text(); strings.HasPrefix(first, "mount-error") {
		t.Skipf("cannot mount read-only (%s)", first)
	} else {
		require.Equal(t, "ready", first)
	}
	for i := 200; i < n; i += 25 {
		batch(i, 25)
	}
	for want := uint64(1); want <= n; want++ {
		require.True(t, sc.Scan(), "the follower stopped at %d", want)
		require.Equal(t, strconv.FormatUint(want, 10), sc.Text(), "every position once, in order")
	}
	var tagged []string
	for e, err := range s.Read(t.Context(), tagQuery("k:3"), store.ReadOptions{}) {
		require.NoError(t, err)
		tagged = append(tagged, strconv.FormatUint(e.Position, 10))
	}
	require.True(t, sc.Scan())
	require.Equal(t, "tagged "+strings.Join(tagged, ","), sc.Text())
	require.NoError(t, cmd.Wait())
}
