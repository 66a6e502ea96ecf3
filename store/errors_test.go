package store_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An error names its package once: a store error that means ErrClosed
// does not say "store:" twice ("store: wait for projection of 100: store:
// closed" was one), whether the call met a closed store or was waiting
// when Close came.
func TestErrorsSayStoreOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := &heldFS{FS: vfs.OS, events: filepath.Join(dir, storedir.EventsDir), release: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{MaxProjectionLag: 100}, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	batch := func(n int) []dcb.Event {
		evs := make([]dcb.Event, n)
		for i := range evs {
			evs[i] = dcb.Event{Type: "T", Tags: []string{"t"}}
		}
		return evs
	}
	_, err = s.Append(t.Context(), batch(100), nil) // the bound, no wait
	require.NoError(t, err)
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)

	// Waiting for a projector that is held: a batch over the bound, and
	// WaitProjected. Close stops the projector short of both (it stops
	// within 64 event files).
	lagErr, waitErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), batch(150), nil)
		lagErr <- err
	}()
	go func() { waitErr <- s.WaitProjected(t.Context(), 100) }()
	for s.Stats().LagWaits < 1 {
		runtime.Gosched()
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-store.ProjectorStopping(s)
	close(h.release)
	require.NoError(t, <-closed)
	require.NoError(t, f.Close())

	_, appendErr := s.Append(t.Context(), []dcb.Event{{Type: "B"}}, nil)
	_, readErr := read(s, t.Context(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"t"}}}}, store.ReadOptions{})
	_, followErr := read(f, t.Context(), dcb.All(), store.ReadOptions{})
	for name, err := range map[string]error{
		"append waiting for the lag": <-lagErr,
		"waiting for the projection": <-waitErr,
		"append":                     appendErr,
		"read":                       readErr,
		"wait projected":             s.WaitProjected(t.Context(), 1),
		"follower read":              followErr,
	} {
		require.ErrorIs(t, err, store.ErrClosed, name)
		assert.Equal(t, 1, strings.Count(err.Error(), "store: "), "%s: %v", name, err)
	}
}
