package store_test

import (
	"context"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendMany: the items of one AppendMany are taken into one group and
// written together, in the order given; each is checked against its own
// condition (seeing the items accepted before it), gets its own outcome,
// and fails alone.
func TestAppendMany(t *testing.T) {
	s := open(t, t.TempDir())
	appendOK(t, s, ev("Seed"))
	written := groupsWritten(s)

	out := s.AppendMany(t.Context(), []store.AppendItem{
		{Events: []dcb.Event{ev("A", "a")}},
		// Fails on A, the item before it, not yet durable when checked.
		{Events: []dcb.Event{ev("B", "b")}, Condition: &dcb.AppendCondition{FailIfEventsMatch: tagQuery("a"), After: 1}},
		{Events: nil}, // invalid: an empty batch
		{Events: []dcb.Event{ev("C", "c"), ev("C", "c")}, Condition: &dcb.AppendCondition{FailIfEventsMatch: tagQuery("b"), After: 1}},
		{Events: []dcb.Event{ev("D")}, Condition: &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{}}}}}, // invalid query
		{Events: []dcb.Event{ev("E", "e")}, Condition: &dcb.AppendCondition{FailIfEventsMatch: tagQuery("e")}},
	})
	require.Len(t, out, 6)
	require.NoError(t, out[0].Err)
	assert.Equal(t, uint64(2), out[0].Last)
	require.ErrorIs(t, out[1].Err, dcb.ErrAppendConditionFailed)
	require.ErrorIs(t, out[2].Err, dcb.ErrInvalidEvent)
	require.NoError(t, out[3].Err)
	assert.Equal(t, uint64(4), out[3].Last)
	require.ErrorIs(t, out[4].Err, dcb.ErrInvalidQuery)
	require.NoError(t, out[5].Err)
	assert.Equal(t, uint64(5), out[5].Last)
	require.Equal(t, uint64(5), <-written, "one group took every item")
	assert.Empty(t, written, "and no other group was written")
	assert.Equal(t, uint64(5), s.Head(), "answered once durable")

	// Acknowledged means durable: they are there after a reopen.
	s = reopen(t, s)
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Equal(t, seq(1, 5), positions(evs))
	for i, typ := range []string{"Seed", "A", "C", "C", "E"} {
		assert.Equal(t, typ, evs[i].Type)
	}

	// Nothing to append: every item has its error, nothing is written.
	out = s.AppendMany(t.Context(), []store.AppendItem{{}, {Events: []dcb.Event{{}}}})
	require.ErrorIs(t, out[0].Err, dcb.ErrInvalidEvent)
	require.ErrorIs(t, out[1].Err, dcb.ErrInvalidEvent)
	assert.Empty(t, s.AppendMany(t.Context(), nil))
	assert.Equal(t, uint64(5), s.Head())
}

// TestAppendManyCancelledOrClosed: a context ended before the items are
// taken up cancels every valid item, and a closed store refuses them; the
// invalid ones keep their own error, and nothing is written.
func TestAppendManyCancelledOrClosed(t *testing.T) {
	s := open(t, t.TempDir())
	items := []store.AppendItem{{Events: []dcb.Event{ev("A")}}, {}, {Events: []dcb.Event{ev("B")}}}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out := s.AppendMany(ctx, items)
	require.ErrorIs(t, out[0].Err, context.Canceled)
	require.ErrorIs(t, out[1].Err, dcb.ErrInvalidEvent)
	require.ErrorIs(t, out[2].Err, context.Canceled)
	assert.Equal(t, uint64(0), s.Head())

	require.NoError(t, s.Close())
	out = s.AppendMany(t.Context(), items)
	require.ErrorIs(t, out[0].Err, store.ErrClosed)
	require.ErrorIs(t, out[1].Err, dcb.ErrInvalidEvent)
	require.ErrorIs(t, out[2].Err, store.ErrClosed)
}
