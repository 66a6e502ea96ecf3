package wal

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockedSync is an Options.SyncFile seam that, while blocking, reports
// each call on entered (the file's path) and returns what the test sends on
// release, the real fsync's result when that is nil.
type blockedSync struct {
	entered  chan string
	release  chan error
	calls    atomic.Int64 // calls while blocking
	blocking atomic.Bool
}

// blockSyncs returns a seam that blocks from the start.
func blockSyncs() *blockedSync {
	b := &blockedSync{entered: make(chan string), release: make(chan error)}
	b.blocking.Store(true)
	return b
}

// sync is the seam: give it to Open as Options.SyncFile.
func (b *blockedSync) sync(f *os.File) error {
	if !b.blocking.Load() {
		return platform.DataSync(f)
	}
	b.calls.Add(1)
	b.entered <- f.Name()
	if err := <-b.release; err != nil {
		return err
	}
	return platform.DataSync(f)
}

// unblock makes the seam the real fsync.
func (b *blockedSync) unblock() { b.blocking.Store(false) }

type syncResult struct {
	last uint64
	err  error
}

// startSync runs l.Sync in a goroutine and returns where its result arrives.
func startSync(l *Log) <-chan syncResult {
	done := make(chan syncResult, 1)
	go func() {
		last, err := l.Sync()
		done <- syncResult{last, err}
	}()
	return done
}

// TestWriteVisibleOnlyAfterSync: written records are neither counted by
// LastPosition nor readable until a Sync covers them.
func TestWriteVisibleOnlyAfterSync(t *testing.T) {
	dir := t.TempDir()
	b := blockSyncs()
	b.unblock()
	l := openLog(t, dir, Options{SyncFile: b.sync})
	acked := genChain(0, 3)
	require.NoError(t, l.Append(acked))

	recs := genChain(lastPos(acked), 2)
	require.NoError(t, l.Write(recs))
	assert.Equal(t, lastPos(acked), l.LastPosition())
	_, err := l.ReadRecord(recs[0].FirstPosition)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = l.NewReader().Event(lastPos(recs))
	assert.ErrorIs(t, err, ErrNotFound)
	checkLog(t, l, acked)

	last, err := l.Sync()
	require.NoError(t, err)
	assert.Equal(t, lastPos(recs), last)
	want := append(acked, recs...)
	checkLog(t, l, want)

	// Nothing written since: Sync returns at once, without an fsync.
	b.blocking.Store(true)
	last, err = l.Sync()
	require.NoError(t, err)
	assert.Equal(t, lastPos(want), last)
	assert.Zero(t, b.calls.Load())
	require.NoError(t, l.Close())
	l = openLog(t, dir, Options{})
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestWriteWhileSyncing: while one Sync's fsync runs, Write goes on; the
// Sync covers the records written before it started, not those written
// during its fsync, which wait for the next one. One fsync covers every
// record written since the Sync before it.
func TestWriteWhileSyncing(t *testing.T) {
	dir := t.TempDir()
	b := blockSyncs()
	l := openLog(t, dir, Options{SyncFile: b.sync})
	first := genChain(0, 2)
	require.NoError(t, l.Write(first))
	sync1 := startSync(l)
	<-b.entered // the fsync of first runs

	second := genChain(lastPos(first), 3)
	require.NoError(t, l.Write(second[:1]), "Write waits for no fsync")
	require.NoError(t, l.Write(second[1:]))
	assert.Zero(t, l.LastPosition(), "nothing is durable yet")
	_, err := l.ReadRecord(1)
	assert.ErrorIs(t, err, ErrNotFound)

	b.release <- nil
	res := <-sync1
	require.NoError(t, res.err)
	assert.Equal(t, lastPos(first), res.last, "the first Sync covers what was written before it")
	checkLog(t, l, first)

	sync2 := startSync(l)
	<-b.entered
	b.release <- nil
	res = <-sync2
	require.NoError(t, res.err)
	want := append(first, second...)
	assert.Equal(t, lastPos(want), res.last)
	assert.Equal(t, int64(2), b.calls.Load(), "one fsync for both writes of second")
	checkLog(t, l, want)
	require.NoError(t, l.Close())

	b.unblock()
	l = openLog(t, dir, Options{})
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestRollBetweenWriteAndSync: records written during a Sync's fsync roll
// the log into new segments. The running Sync fsyncs the segment it started
// with and makes only its own records visible; the next one fsyncs the new
// tail and the directory that names the new segments.
func TestRollBetweenWriteAndSync(t *testing.T) {
	dir := t.TempDir()
	var dirSyncs atomic.Int64
	b := blockSyncs()
	opts := Options{SegmentSize: 1000, SyncFile: b.sync, SyncDir: func(d string) error { dirSyncs.Add(1); return syncDir(d) }}
	l := openLog(t, dir, opts)

	first := genChain(0, 1)
	require.NoError(t, l.Write(first))
	sync1 := startSync(l)
	assert.Equal(t, filepath.Join(dir, segmentName(1)), <-b.entered)

	second := genChain(lastPos(first), 20)
	require.NoError(t, l.Write(second))
	segs := segmentFiles(t, dir)
	require.Greater(t, len(segs), 1, "test bug: the second write did not roll a segment")

	b.release <- nil
	res := <-sync1
	require.NoError(t, res.err)
	assert.Equal(t, lastPos(first), res.last)
	assert.Zero(t, dirSyncs.Load(), "the first Sync created no segment")
	checkLog(t, l, first)

	sync2 := startSync(l)
	assert.Equal(t, filepath.Join(dir, segs[len(segs)-1]), <-b.entered, "the second Sync fsyncs the new tail")
	b.release <- nil
	res = <-sync2
	require.NoError(t, res.err)
	want := append(first, second...)
	assert.Equal(t, lastPos(want), res.last)
	assert.Equal(t, int64(1), dirSyncs.Load(), "the directory naming the new segments is synced")
	checkLog(t, l, want)
	require.NoError(t, l.Close())

	b.unblock()
	l = openLog(t, dir, opts)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestSyncFailureFailsLaterWrites: an fsync that fails poisons the log: the
// records it covered and those written after it, during the fsync, never
// become visible; every later Write and Sync fails without another fsync.
func TestSyncFailureFailsLaterWrites(t *testing.T) {
	dir := t.TempDir()
	injected := errors.New("injected fsync failure")
	b := blockSyncs()
	l := openLog(t, dir, Options{SyncFile: b.sync})
	acked := genChain(0, 4)
	require.NoError(t, l.Write(acked))
	sync0 := startSync(l)
	<-b.entered
	b.release <- nil
	require.NoError(t, (<-sync0).err)

	first := genChain(lastPos(acked), 2)
	require.NoError(t, l.Write(first))
	sync1 := startSync(l)
	<-b.entered
	second := genChain(lastPos(first), 2)
	require.NoError(t, l.Write(second))
	b.release <- injected
	res := <-sync1
	require.ErrorIs(t, res.err, ErrPoisoned)
	require.ErrorIs(t, res.err, injected)

	_, err := l.Sync() // would block on entered if it tried to fsync
	require.ErrorIs(t, err, ErrPoisoned)
	require.ErrorIs(t, err, injected)
	require.ErrorIs(t, l.Write(genChain(lastPos(second), 1)), ErrPoisoned)
	assert.Equal(t, int64(2), b.calls.Load(), "no fsync after the failure")
	checkLog(t, l, acked)
	require.NoError(t, l.Close())

	// The failed records reached the file (only the fsync failed): after a
	// reopen the log may hold them, each whole, in order after acked.
	b.unblock()
	l = openLog(t, dir, Options{})
	want := acked
	switch l.LastPosition() {
	case lastPos(acked):
	case lastPos(first):
		want = append(want, first...)
	default:
		want = append(append(want, first...), second...)
	}
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestCloseWaitsForSync: Close waits for the Sync in progress; records
// written and not synced stay invisible.
func TestCloseWaitsForSync(t *testing.T) {
	dir := t.TempDir()
	b := blockSyncs()
	l := openLog(t, dir, Options{SyncFile: b.sync})
	first := genChain(0, 2)
	require.NoError(t, l.Write(first))
	sync1 := startSync(l)
	<-b.entered
	require.NoError(t, l.Write(genChain(lastPos(first), 1)))
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	b.release <- nil
	res := <-sync1
	require.NoError(t, res.err)
	assert.Equal(t, lastPos(first), res.last)
	require.NoError(t, <-closed)
	_, err := l.Sync()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.Write(genChain(lastPos(first), 1)), ErrClosed)
}
