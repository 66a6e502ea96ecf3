//go:build linux

package wal

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writerFD returns the descriptor through which this process writes the
// file at path: tidwall's handle on the tail segment (the Log's own handles
// on segments are read-only).
func writerFD(t *testing.T, path string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	require.NoError(t, err)
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var fds []int
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target != want {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		require.NoError(t, err)
		var flags int64 = -1
		for line := range strings.Lines(string(info)) {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, err = strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				require.NoError(t, err)
			}
		}
		require.NotEqual(t, int64(-1), flags)
		if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		require.NoError(t, err)
		fds = append(fds, fd)
	}
	require.Len(t, fds, 1, "writable descriptors of %s", path)
	return fds[0]
}

// redirectFD makes descriptor fd refer to the device at dev until the
// returned function restores it: writes through it then fail (or vanish) for
// real, in the kernel.
func redirectFD(t *testing.T, fd int, dev string) (restore func()) {
	t.Helper()
	saved, err := syscall.Dup(fd)
	require.NoError(t, err)
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Dup3(int(f.Fd()), fd, syscall.O_CLOEXEC))
	restored := false
	restore = func() {
		if !restored {
			restored = true
			require.NoError(t, syscall.Dup3(saved, fd, syscall.O_CLOEXEC))
			require.NoError(t, syscall.Close(saved))
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestPoisonedByWriteError: the segment write fails with ENOSPC (the tail
// segment's descriptor points at /dev/full).
func TestPoisonedByWriteError(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(20, 20))
	l := openLog(t, dir, Options{})
	want := appendN(t, l, 12, rng)
	before := snapshot(t, dir)

	restore := redirectFD(t, writerFD(t, filepath.Join(dir, segmentName(1))), "/dev/full")
	err := l.Append(genChain(lastPos(want), 3))
	restore()
	require.ErrorIs(t, err, ErrPoisoned)
	assert.ErrorIs(t, err, syscall.ENOSPC, "the cause is kept")

	for range 3 {
		err := l.Append(genChain(lastPos(want), 1))
		require.ErrorIs(t, err, ErrPoisoned)
		assert.ErrorIs(t, err, syscall.ENOSPC)
	}
	assert.Equal(t, lastPos(want), l.LastPosition())
	checkLog(t, l, want)
	assert.Equal(t, before, snapshot(t, dir), "nothing reached the files")
	assert.NoError(t, l.Close())

	l = openLog(t, dir, Options{}) // no torn tail: nothing was written
	checkLog(t, l, want)
	want = append(want, appendN(t, l, 5, rng)...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

const shortWriteChildEnv = "POSSUM_WAL_TEST_SHORT_WRITE_DIR"

// TestPoisonedByShortWrite: a child process appends under a file size limit
// (RLIMIT_FSIZE) that lets only 20 bytes of a record reach the segment, so
// the write is cut short and fails with EFBIG, as on a full disk. The child
// checks the poisoning; the parent reopens the log, which finds the 20 bytes
// as a torn tail.
func TestPoisonedByShortWrite(t *testing.T) {
	const (
		acked   = 7
		written = 20
	)
	if dir := os.Getenv(shortWriteChildEnv); dir != "" {
		l := openLog(t, dir, Options{})
		want := appendN(t, l, acked, rand.New(rand.NewPCG(21, 21)))
		path := filepath.Join(dir, segmentName(1))
		st, err := os.Stat(path)
		require.NoError(t, err)
		var lim syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim))
		lim.Cur = uint64(st.Size()) + written
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))

		err = l.Append(genChain(lastPos(want), 2))
		require.ErrorIs(t, err, ErrPoisoned)
		require.ErrorIs(t, err, syscall.EFBIG)
		require.ErrorIs(t, l.Append(genChain(lastPos(want), 1)), ErrPoisoned)
		require.Equal(t, lastPos(want), l.LastPosition())
		checkLog(t, l, want)
		st2, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, st.Size()+written, st2.Size(), "a short write")
		require.NoError(t, l.Close())
		return
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPoisonedByShortWrite$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), shortWriteChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child:\n%s", out)
	require.Contains(t, string(out), "--- PASS: TestPoisonedByShortWrite", "child:\n%s", out)

	want := genChain(0, acked)
	path := filepath.Join(dir, segmentName(1))
	damaged := readFile(t, path)
	l, torn, err := Open(dir, Options{})
	require.NoError(t, err)
	require.NotNil(t, torn)
	assert.Equal(t, segmentName(1), torn.Segment)
	assert.Equal(t, int64(len(damaged)-written), torn.Offset)
	assert.Equal(t, int64(written), torn.Dropped)
	assert.Equal(t, damaged, readFile(t, torn.Copy))
	checkLog(t, l, want)
	want = append(want, appendN(t, l, 5, rand.New(rand.NewPCG(22, 22)))...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	l = openLog(t, dir, Options{})
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestOffsetsWriteFailureKeepsAppend: the offsets file is derived data, so a
// failure to write it must not fail an append that is already durable. The
// log stops maintaining the file and the next Open scans what it lacks.
func TestOffsetsWriteFailureKeepsAppend(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	want := appendN(t, l, 5, rand.New(rand.NewPCG(23, 23)))
	restore := redirectFD(t, int(l.offsets.f.Fd()), "/dev/full")
	recs := genChain(lastPos(want), 1)
	require.NoError(t, l.Append(recs))
	restore()
	want = append(want, recs...)
	assert.ErrorIs(t, l.OffsetsErr(), syscall.ENOSPC)
	want = append(want, appendN(t, l, 3, rand.New(rand.NewPCG(24, 24)))...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())

	// Trusting everything, Open takes the 5 records the file holds and
	// scans the rest.
	l = openLog(t, dir, Options{TrustPosition: lastPos(want)})
	assert.Equal(t, 5, l.Stats().TrustedRecords)
	assert.Equal(t, 4, l.Stats().ScannedRecords)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}
