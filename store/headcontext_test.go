package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeadContext: the Events head of a store and of a follower returns
// the head, fails with ctx's error once ctx has ended and with ErrClosed
// once the reader is closed; the store's Head stays cheap and keeps the
// head at Close.
func TestHeadContext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	last := appendOK(t, s, ev("A"), ev("B"))

	for name, r := range map[string]store.Events{"store": s, "follower": f} {
		h, err := r.HeadContext(t.Context())
		require.NoError(t, err, name)
		assert.Equal(t, last, h, "%s: the head, the follower's read from the offsets file at once", name)
		ended, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = r.HeadContext(ended)
		assert.ErrorIs(t, err, context.Canceled, name)
	}

	require.NoError(t, f.Close())
	_, err = f.HeadContext(t.Context())
	assert.ErrorIs(t, err, store.ErrClosed, "follower")
	assert.Equal(t, last, f.Stats().Head, "Stats keeps the last head learned")
	require.NoError(t, s.Close())
	_, err = s.HeadContext(t.Context())
	assert.ErrorIs(t, err, store.ErrClosed, "store")
	assert.Equal(t, last, s.Head(), "Head never fails")
}
