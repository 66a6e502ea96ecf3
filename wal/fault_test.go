package wal

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFsyncFailurePoisons: an fsync that fails poisons the log. The failing
// Append reports the cause; every later Append fails at once, without
// another fsync (an fsync error is not retryable on Linux: the kernel may
// have dropped the dirty pages); reads of acknowledged records go on; after
// a reopen every acknowledged record is there and the log takes appends.
func TestFsyncFailurePoisons(t *testing.T) {
	for _, c := range []struct {
		segmentSize int
		before      int // records appended (and acknowledged) before the failure
		batch       int // records in the failing append
	}{
		{0, 0, 1},
		{0, 20, 1},
		{0, 20, 3},
		{300, 20, 3}, // small segments: the failing append rolls segments
	} {
		t.Run(fmt.Sprintf("segment %d after %d batch %d", c.segmentSize, c.before, c.batch), func(t *testing.T) {
			dir := t.TempDir()
			var calls atomic.Int64
			var fail atomic.Bool
			opts := Options{SegmentSize: c.segmentSize, SyncFile: func(f *os.File) error {
				calls.Add(1)
				if fail.Load() {
					return syscall.EIO
				}
				return platform.DataSync(f)
			}}

			l := openLog(t, dir, opts)
			acked := genChain(0, c.before)
			for _, r := range acked {
				require.NoError(t, l.Append([]Record{r}))
			}
			require.Equal(t, int64(c.before), calls.Load(), "one fsync per append")

			fail.Store(true)
			failed := genChain(lastPos(acked), c.batch)
			err := l.Append(failed)
			require.ErrorIs(t, err, ErrPoisoned)
			require.ErrorIs(t, err, syscall.EIO)
			require.Equal(t, int64(c.before)+1, calls.Load())
			// The failed append is not acknowledged: it is not readable.
			assert.Equal(t, lastPos(acked), l.LastPosition())
			_, err = l.ReadRecord(lastPos(acked) + 1)
			assert.ErrorIs(t, err, ErrNotFound)

			fail.Store(false) // a retry would now succeed: it must not be tried
			for range 3 {
				err := l.Append(genChain(l.LastPosition(), 1))
				require.ErrorIs(t, err, ErrPoisoned)
				require.ErrorIs(t, err, syscall.EIO, "the cause stays in the error")
			}
			require.Equal(t, int64(c.before)+1, calls.Load(), "a poisoned log must not fsync again")
			checkLog(t, l, acked) // reads still work
			require.NoError(t, l.Close())
			require.ErrorIs(t, l.Append(genChain(l.LastPosition(), 1)), ErrClosed)

			// Reopen with the real fsync: every acknowledged record is there.
			// The failed append's bytes reached the file (only the fsync
			// failed), so it may be there too, whole; nothing else.
			opts.SyncFile = nil
			l, torn, err := Open(dir, opts)
			require.NoError(t, err)
			assert.Nil(t, torn)
			want := acked
			if l.LastPosition() != lastPos(acked) {
				require.Equal(t, lastPos(failed), l.LastPosition(), "the log holds part of the failed append")
				want = append(append([]Record(nil), acked...), failed...)
			}
			checkLog(t, l, want)

			// The log takes appends again.
			more := genChain(lastPos(want), 10)
			for _, r := range more {
				require.NoError(t, l.Append([]Record{r}))
			}
			want = append(want, more...)
			checkLog(t, l, want)
			require.NoError(t, l.Close())

			l = openLog(t, dir, opts)
			checkLog(t, l, want)
			require.NoError(t, l.Close())
			rep, err := Verify(dir, nil)
			require.NoError(t, err)
			assert.Nil(t, rep.Damage)
			assert.Equal(t, lastPos(want), rep.LastPosition)
		})
	}
}
