package store_test

import (
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEventByID: the store finds an acknowledged event by its ID, with its
// position, also after a reopen; an ID it does not hold is not found; and
// dcb.Retried against it, as another engine applies the rule, answers a
// retry as the store's own Append does. Closed, it says so.
func TestEventByID(t *testing.T) {
	s := open(t, t.TempDir())
	ts := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	batch := []dcb.Event{
		{Type: "A", Tags: []string{"t"}, Data: []byte(`{"a":1}`), ID: "a", Timestamp: ts},
		{Type: "B", ID: "b"},
	}
	appendOK(t, s, ev("Seed"))
	appendOK(t, s, batch...)

	var held dcb.Held = s.EventByID
	check := func(how string) {
		t.Helper()
		pos, e, ok, err := held("a")
		require.NoError(t, err, how)
		require.True(t, ok, how)
		assert.Equal(t, uint64(2), pos, how)
		assert.Equal(t, batch[0].Normalized(), e, how)
		pos, e, ok, err = held("b")
		require.NoError(t, err, how)
		require.True(t, ok, how)
		assert.Equal(t, uint64(3), pos, how)
		assert.Equal(t, "B", e.Type, how)
		assert.False(t, e.Timestamp.IsZero(), "%s: the store's timestamp", how)
		_, _, ok, err = held("c")
		require.NoError(t, err, how)
		assert.False(t, ok, "%s: an id the store does not hold", how)

		last, err := dcb.Retried(batch, held)
		require.NoError(t, err, how)
		assert.Equal(t, uint64(3), last, "%s: a retry, as the store answers it", how)
		_, err = dcb.Retried([]dcb.Event{{Type: "Other", ID: "a"}}, held)
		assert.ErrorIs(t, err, dcb.ErrIDConflict, how)
	}
	check("open")
	s = reopen(t, s)
	held = s.EventByID
	check("reopened")
	got, err := s.Append(t.Context(), batch, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got, "the store's own answer")

	require.NoError(t, s.Close())
	_, _, _, err = s.EventByID("a")
	assert.ErrorIs(t, err, store.ErrClosed)
}
