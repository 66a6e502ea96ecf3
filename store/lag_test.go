package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/projectiontest"
	"github.com/possumstore/possum/internal/vfs"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldFS holds every rename into events/ until release is closed.
type heldFS struct {
	vfs.FS
	events  string
	release chan struct{}
}

func (h *heldFS) Rename(from, to string) error {
	if filepath.Dir(to) == h.events {
		<-h.release
	}
	return h.FS.Rename(from, to)
}

// TestProjectionLagBound: with the projector held, appends go on until the
// lag reaches Options.MaxProjectionLag; the next one waits (its context can
// give up, writing nothing), and passes once the projector moves.
func TestProjectionLagBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := &heldFS{FS: vfs.OS, events: filepath.Join(dir, projector.EventsDir), release: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{MaxProjectionLag: 10}, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for i := range 10 {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "T", Tags: []string{fmt.Sprint("n:", i)}}}, nil)
		require.NoError(t, err, "append %d is within the bound", i+1)
	}
	st := s.Stats()
	assert.Equal(t, uint64(10), st.MaxLag)
	assert.Equal(t, uint64(10), st.Lag)
	assert.Zero(t, st.LagWaits)

	// The projector cannot move: an append beyond the bound waits until
	// its context ends, and writes nothing.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = s.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, uint64(10), s.Head(), "a waiting append wrote nothing")
	assert.Equal(t, uint64(1), s.Stats().LagWaits)

	// A batch larger than the bound waits for the whole backlog, then
	// passes; so does the single append racing it.
	done := make(chan error, 2)
	go func() {
		_, err := s.Append(t.Context(), make15(), nil)
		done <- err
	}()
	go func() {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
		done <- err
	}()
	// Both wait: the projector is held. Once both are counted, let it go.
	for s.Stats().LagWaits < 3 {
		runtime.Gosched()
	}
	close(h.release)
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	assert.Equal(t, uint64(26), s.Head())
	assert.Equal(t, uint64(3), s.Stats().LagWaits)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}

func make15() []dcb.Event {
	evs := make([]dcb.Event, 15)
	for i := range evs {
		evs[i] = dcb.Event{Type: "Big", Tags: []string{"big"}}
	}
	return evs
}

// TestProjectionLagBoundUnderLoad: 64 writers appending as fast as NoSync
// lets them, far faster than the projector writes files: the lag never
// exceeds the bound by more than one append per writer.
func TestProjectionLagBoundUnderLoad(t *testing.T) {
	t.Parallel()
	const bound, writers, each = 200, 64, 60
	dir := t.TempDir()
	s, err := store.Open(dir, &store.Options{NoSync: true, MaxProjectionLag: bound})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	var mu sync.Mutex
	var maxLag uint64 // under mu
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.Append(t.Context(), []dcb.Event{{Type: "Load", Tags: []string{fmt.Sprintf("w:%d", w), fmt.Sprintf("i:%d", i)}}}, nil)
				require.NoError(t, err)
				lag := s.Stats().Lag
				mu.Lock()
				maxLag = max(maxLag, lag)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("max lag seen %d (bound %d), %d appends waited %v in all", maxLag, bound, st.LagWaits, st.LagWaitTime)
	assert.LessOrEqual(t, maxLag, uint64(bound+writers))
	assert.Equal(t, uint64(writers*each), s.Head())
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}

// TestLagBoundIgnoresRewritesBelowCheckpoint: event files Open found missing
// below the checkpoint are rewritten in the background; they hold back
// Projected (and WaitProjected) but are not lag: appends do not wait for them.
func TestLagBoundIgnoresRewritesBelowCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 20 {
		appendOK(t, s, ev("T", fmt.Sprint("n:", i)))
	}
	closeProjected(t, s)
	for _, pos := range []uint64{3, 9} {
		require.NoError(t, os.Remove(projector.EventPath(dir, pos)))
	}

	h := &heldFS{FS: vfs.OS, events: filepath.Join(dir, projector.EventsDir), release: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{MaxProjectionLag: 5}, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	st := s.Stats()
	assert.Equal(t, uint64(2), st.Projected, "event file 3 is still to be rewritten")
	assert.Zero(t, st.Lag)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for range 4 {
		_, err := s.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
		require.NoError(t, err)
	}
	assert.Zero(t, s.Stats().LagWaits, "appends waited for rewrites below the checkpoint")
	close(h.release)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}
