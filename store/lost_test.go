package store_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lostStore returns a store holding, at positions 1..5: an Order tagged
// o:1, a lost marker of known type Paid tagged o:1, an Order tagged o:2, a
// lost marker of unknown type, an Order tagged o:3.
func lostStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	_, err = s.Append(ctx, []dcb.Event{{Type: "Order", Tags: []string{"o:1"}}}, nil)
	require.NoError(t, err)
	last, err := s.AppendLost(ctx, 1, []dcb.Event{{Type: "Paid", Tags: []string{"o:1", "o:1"}}}, "")
	require.NoError(t, err)
	require.Equal(t, uint64(2), last)
	_, err = s.Append(ctx, []dcb.Event{{Type: "Order", Tags: []string{"o:2"}}}, nil)
	require.NoError(t, err)
	last, err = s.AppendLost(ctx, 3, []dcb.Event{{}}, "")
	require.NoError(t, err)
	require.Equal(t, uint64(4), last)
	_, err = s.Append(ctx, []dcb.Event{{Type: "Order", Tags: []string{"o:3"}}}, nil)
	require.NoError(t, err)
	return s, dir
}

// TestAppendLost: markers go at after+1.. when the head is after, and
// nowhere otherwise; a marker with anything beyond a type and tags is
// refused; nothing refused is written. Reads yield a known marker where
// its type and tags match and an unknown one in every query's range,
// forwards and backwards, as do Subscribe, a follower and the store opened
// again; the event and index files hold them; LOST lists them.
func TestAppendLost(t *testing.T) {
	s, dir := lostStore(t)
	ctx := t.Context()

	_, err := s.AppendLost(ctx, 4, []dcb.Event{{}}, "")
	require.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	assert.ErrorContains(t, err, "the head is 5, not 4")
	for name, m := range map[string]dcb.Event{
		"data":           {Type: "A", Data: json.RawMessage(`1`)},
		"metadata":       {Type: "A", Metadata: map[string]string{"k": "v"}},
		"id":             {Type: "A", ID: "x"},
		"timestamp":      {Type: "A", Timestamp: time.Now()},
		"unknown tagged": {Tags: []string{"t"}},
		"empty tag":      {Type: "A", Tags: []string{""}},
	} {
		_, err := s.AppendLost(ctx, 5, []dcb.Event{{}, m}, "")
		assert.ErrorIs(t, err, dcb.ErrInvalidEvent, name)
	}
	_, err = s.AppendLost(ctx, 5, nil, "")
	assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
	assert.Equal(t, uint64(5), s.Head(), "nothing refused was written")

	paid := dcb.SequencedEvent{Event: dcb.Event{Type: "Paid", Tags: []string{"o:1"}}, Position: 2, Lost: true}
	unknown := dcb.SequencedEvent{Position: 4, Lost: true}
	check := func(t *testing.T, r store.Events) {
		t.Helper()
		all := readAll(t, r, dcb.All(), store.ReadOptions{})
		require.Len(t, all, 5)
		assert.Equal(t, paid, all[1])
		assert.Equal(t, unknown, all[3])
		for _, e := range all {
			assert.Equal(t, e.Position == 2 || e.Position == 4, e.Lost, "position %d", e.Position)
		}
		assert.Equal(t, []uint64{2, 4}, positions(readAll(t, r, typeQuery("Paid"), store.ReadOptions{})), "a known marker by its type, an unknown one in range")
		assert.Equal(t, []uint64{1, 2, 4}, positions(readAll(t, r, tagQuery("o:1"), store.ReadOptions{})))
		assert.Equal(t, []uint64{3, 4}, positions(readAll(t, r, tagQuery("o:2"), store.ReadOptions{})))
		assert.Equal(t, []uint64{4, 3}, positions(readAll(t, r, tagQuery("o:2"), store.ReadOptions{Backwards: true})))
		assert.Equal(t, []uint64{4}, positions(readAll(t, r, tagQuery("nobody"), store.ReadOptions{})), "an unknown marker might have matched any query")
		assert.Empty(t, readAll(t, r, tagQuery("nobody"), store.ReadOptions{From: 5}), "outside its range, no")
		sub := collectQuery(t, r, typeQuery("Paid"), 0)(2)
		assert.Equal(t, []dcb.SequencedEvent{paid, unknown}, sub)
	}
	t.Run("store", func(t *testing.T) { check(t, s) })
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	t.Run("follower", func(t *testing.T) { check(t, f) })

	require.NoError(t, s.WaitProjected(ctx, 5))
	all := readAll(t, s, dcb.All(), store.ReadOptions{})
	projectiontest.RequireMatches(t, dir, all)
	b, err := os.ReadFile(storedir.EventPath(dir, 4))
	require.NoError(t, err)
	assert.Equal(t, "{\"position\":4,\"lost\":true}\n", string(b))
	b, err = os.ReadFile(storedir.EventPath(dir, 2))
	require.NoError(t, err)
	assert.Equal(t, "{\"position\":2,\"lost\":true,\"type\":\"Paid\",\"tags\":[\"o:1\"]}\n", string(b))

	losses, err := storedir.ReadLosses(dir)
	require.NoError(t, err)
	require.Len(t, losses, 2)
	assert.Equal(t, []storedir.Range{{From: 2, To: 2}, {From: 4, To: 4}}, storedir.LostRanges(losses))
	assert.Contains(t, losses[0].Why, "AppendLost")

	// Opened again, from the snapshot of a clean close, and from the WAL
	// once the projection is gone: the same.
	require.NoError(t, s.Close())
	for _, how := range []string{"snapshot", "rebuilt"} {
		if how == "rebuilt" {
			require.NoError(t, os.RemoveAll(filepath.Join(dir, storedir.IndexDir)))
			require.NoError(t, os.RemoveAll(filepath.Join(dir, storedir.EventsDir)))
			require.NoError(t, os.Remove(filepath.Join(dir, storedir.CheckpointFile)))
		}
		s2, err := store.Open(dir, nil)
		require.NoError(t, err)
		t.Run("reopened "+how, func(t *testing.T) { check(t, s2) })
		require.NoError(t, s2.WaitProjected(ctx, 5))
		projectiontest.RequireMatches(t, dir, all)
		require.NoError(t, s2.Close())
	}
}

// TestConditionOnLost: an append condition fails on a lost marker in its
// range as on an event: a known marker whose type and tags match it, and
// an unknown marker whatever its query; the error wraps
// dcb.ErrAppendConditionFailed and says the position was lost. A known
// marker that does not match, and a marker at or before After, do not
// fail it.
func TestConditionOnLost(t *testing.T) {
	s, _ := lostStore(t)
	ctx := t.Context()
	cond := func(q dcb.Query, after uint64) *dcb.AppendCondition {
		return &dcb.AppendCondition{FailIfEventsMatch: q, After: after}
	}
	for name, c := range map[string]struct {
		cond *dcb.AppendCondition
		fail string // the error's words; "": the append passes
	}{
		"known marker matching":            {cond(typeQuery("Paid"), 1), `position 2, after the condition's 1, was lost (an event of type "Paid"`},
		"known marker matching by its tag": {cond(tagQuery("o:1"), 1), `position 2, after the condition's 1, was lost`},
		"known marker not matching":        {cond(typeQuery("Refund"), 1), `position 4, after the condition's 1, was lost (an event whose type and tags are unknown: it might have matched`},
		"unknown marker":                   {cond(tagQuery("nobody"), 3), `position 4, after the condition's 3, was lost (an event whose type and tags are unknown`},
		"unknown marker, every event":      {cond(dcb.All(), 3), "position 4, after the condition's 3, was lost"},
		"an event first":                   {cond(typeQuery("Order"), 0), "an event matching the condition exists after position 0"},
		"known marker before After":        {cond(typeQuery("Paid"), 2), "position 4"}, // the unknown one still fails it
		"markers before After":             {cond(typeQuery("Paid"), 4), ""},
		"markers at and before After":      {cond(tagQuery("nobody"), 4), ""},
	} {
		t.Run(name, func(t *testing.T) {
			head := s.Head()
			last, err := s.Append(ctx, []dcb.Event{{Type: "Refund", Tags: []string{"r:" + name}}}, c.cond)
			if c.fail == "" {
				require.NoError(t, err)
				assert.Equal(t, head+1, last)
				return
			}
			require.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
			assert.ErrorContains(t, err, c.fail)
			assert.Equal(t, head, s.Head(), "nothing written")
		})
	}

	// A known marker that does not match, with no unknown marker in range.
	dir := filepath.Join(t.TempDir(), "known")
	s2, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.AppendLost(ctx, 0, []dcb.Event{{Type: "Paid", Tags: []string{"o:1"}}}, "")
	require.NoError(t, err)
	_, err = s2.Append(ctx, []dcb.Event{{Type: "Order"}}, cond(tagQuery("o:2"), 0))
	require.NoError(t, err, "a known marker that does not match does not fail a condition")
	_, err = s2.Append(ctx, []dcb.Event{{Type: "Order"}}, cond(tagQuery("o:1"), 0))
	require.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	assert.True(t, errors.Is(err, dcb.ErrAppendConditionFailed))
}
