package store_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionsValidate: every field of Options, each at values it takes and
// (where there are) values it refuses; Open refuses options that are not
// valid before it touches the directory: nothing created, nothing changed.
func TestOptionsValidate(t *testing.T) {
	ok := []store.Options{
		{},
		{NoSync: true},
		{SegmentSize: 1}, {SegmentSize: store.DefaultSegmentSize}, {SegmentSize: store.MaxSegmentSize},
		{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		{MaxProjectionLag: 1}, {MaxProjectionLag: store.NoProjectionLagBound},
		{MaxProjectionDelay: time.Nanosecond}, {MaxProjectionDelay: store.NoProjectionDelayBound}, {MaxProjectionDelay: -time.Hour},
		{Projection: &store.Projection{}}, {Projection: &store.Projection{EventFiles: true}},
	}
	for _, o := range ok {
		assert.NoError(t, o.Validate(), "%+v", o)
	}
	var none *store.Options
	assert.NoError(t, none.Validate(), "nil: the defaults")

	for _, o := range []store.Options{{SegmentSize: -1}, {SegmentSize: store.MaxSegmentSize + 1}} {
		err := o.Validate()
		require.Error(t, err, "%+v", o)
		assert.ErrorContains(t, err, "SegmentSize")

		dir := filepath.Join(t.TempDir(), "new")
		_, err = store.Open(dir, &o)
		assert.ErrorContains(t, err, "SegmentSize")
		assert.NoDirExists(t, dir, "a refused Open creates nothing")

		existing := t.TempDir()
		s := open(t, existing)
		appendOK(t, s, ev("A"))
		require.NoError(t, s.Close())
		before := testdir.Hash(t, existing)
		o.Projection = &store.Projection{} // a change Open would apply first
		_, err = store.Open(existing, &o)
		require.Error(t, err)
		assert.Equal(t, before, testdir.Hash(t, existing), "a refused Open changes nothing")
	}

	assert.NoError(t, (&store.FollowOptions{Poll: time.Second}).Validate())
	var noFollow *store.FollowOptions
	assert.NoError(t, noFollow.Validate())
	_, err := store.Follow(t.TempDir(), &store.FollowOptions{Poll: -time.Second})
	assert.ErrorContains(t, err, "Poll")
}

// TestFullProjection: the projection of a new store is every file, and a
// caller cannot change what FullProjection gives the next one.
func TestFullProjection(t *testing.T) {
	p := store.FullProjection()
	assert.Equal(t, store.Projection{EventFiles: true, TypeIndex: true, TagIndex: true}, p)
	p.EventFiles = false
	assert.True(t, store.FullProjection().EventFiles)
	s := open(t, t.TempDir())
	assert.Equal(t, store.FullProjection(), s.Projection())
}
