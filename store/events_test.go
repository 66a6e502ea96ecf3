package store_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTimestamps: a timestamp the caller sets is kept exactly (to the
// nanosecond, in UTC) through reads, subscriptions, the event files, a
// reopen and a follower; the events of one append without one share the
// store's; timestamps need not follow positions; one outside what the store
// keeps is refused, nothing written.
func TestTimestamps(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	own := time.Date(1999, 12, 31, 23, 59, 59, 123456789, time.FixedZone("X", -5*3600))
	before := time.Now()
	appendOK(t, s, ev("Seed"))
	last := appendOK(t, s,
		dcb.Event{Type: "Imported", Timestamp: own},
		dcb.Event{Type: "New"},
		dcb.Event{Type: "New"},
	)
	require.Equal(t, uint64(4), last)

	check := func(how string, got []dcb.SequencedEvent) {
		t.Helper()
		require.Len(t, got, 4, how)
		assert.Equal(t, own.UTC(), got[1].Timestamp, "%s: the caller's timestamp, exactly, in UTC", how)
		assert.Equal(t, time.UTC, got[1].Timestamp.Location(), how)
		assert.Equal(t, got[2].Timestamp, got[3].Timestamp, "%s: the events of one append share the store's", how)
		assert.False(t, got[2].Timestamp.Before(before.Truncate(time.Second)), "%s: the store's is now", how)
		assert.True(t, got[1].Timestamp.Before(got[0].Timestamp), "%s: timestamps need not follow positions", how)
	}
	check("read", readAll(t, s, dcb.All(), store.ReadOptions{}))
	var sub []dcb.SequencedEvent
	for e, err := range s.Subscribe(t.Context(), dcb.All(), 0) {
		require.NoError(t, err)
		if sub = append(sub, e); len(sub) == 4 {
			break
		}
	}
	check("subscribe", sub)

	require.NoError(t, s.WaitProjected(t.Context(), last))
	b, err := os.ReadFile(storedir.EventPath(dir, 2))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"timestamp":"2000-01-01T04:59:59.123456789Z"`)
	f, err := storedir.DecodeEvent(b)
	require.NoError(t, err)
	assert.Equal(t, own.UTC(), f.Timestamp)

	s = reopen(t, s)
	check("reopened", readAll(t, s, dcb.All(), store.ReadOptions{}))
	fl, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer fl.Close()
	check("follower", readAll(t, fl, dcb.All(), store.ReadOptions{}))

	for _, bad := range []time.Time{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "Bad", Timestamp: bad}}, nil)
		assert.ErrorIs(t, err, dcb.ErrInvalidEvent, "%v", bad)
		assert.ErrorContains(t, err, "timestamp")
	}
	assert.Equal(t, last, s.Head(), "nothing written")
}

// TestIdempotentAppend: an append whose events all carry IDs the store
// holds, as the same events in the same order, is answered with their
// positions and writes nothing, even under a condition its own events would
// fail; the same ID with other content, a batch mixing held and new IDs,
// or held IDs in another order are refused with dcb.ErrIDConflict, nothing
// written.
func TestIdempotentAppend(t *testing.T) {
	s := open(t, t.TempDir())
	appendOK(t, s, ev("Seed"))
	batch := []dcb.Event{
		{Type: "Paid", Tags: []string{"order:1"}, Data: json.RawMessage(`{"eur":5}`), ID: "pay-1", Metadata: map[string]string{"by": "ada"}},
		{Type: "Shipped", Tags: []string{"order:1"}, ID: "ship-1"},
	}
	cond := &dcb.AppendCondition{FailIfEventsMatch: tagQuery("order:1"), After: 1}
	last, err := s.Append(t.Context(), batch, cond)
	require.NoError(t, err)
	require.Equal(t, uint64(3), last)
	appendOK(t, s, ev("Later"))
	head := s.Head()

	retry := func(events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
		t.Helper()
		last, err := s.Append(t.Context(), events, cond)
		assert.Equal(t, head, s.Head(), "nothing written")
		return last, err
	}
	for name, c := range map[string]*dcb.AppendCondition{"under its condition": cond, "without one": nil} {
		got, err := retry(batch, c)
		require.NoError(t, err, name)
		assert.Equal(t, last, got, name)
	}
	stored := readAll(t, s, dcb.All(), store.ReadOptions{From: 2, Limit: 2})
	withTimes := []dcb.Event{stored[0].Event, stored[1].Event}
	got, err := retry(withTimes, nil)
	require.NoError(t, err, "the store's own timestamps sent back match")
	assert.Equal(t, last, got)
	got, err = retry(batch[:1], nil)
	require.NoError(t, err, "part of an append, in order, is held too")
	assert.Equal(t, uint64(2), got)

	changed := func(f func(e *dcb.Event)) []dcb.Event {
		out := []dcb.Event{batch[0], batch[1]}
		f(&out[0])
		return out
	}
	for _, c := range []struct {
		name, why string
		events    []dcb.Event
	}{
		{"other data", "differs in its data", changed(func(e *dcb.Event) { e.Data = json.RawMessage(`{"eur":6}`) })},
		{"other type", "differs in its type", changed(func(e *dcb.Event) { e.Type = "Refunded" })},
		{"other tags", "differs in its tags", changed(func(e *dcb.Event) { e.Tags = []string{"order:2"} })},
		{"other metadata", "differs in its metadata", changed(func(e *dcb.Event) { e.Metadata = nil })},
		{"another timestamp", "differs in its timestamp", changed(func(e *dcb.Event) { e.Timestamp = time.Unix(1, 0) })},
		{"a new id with held ones", "is new", append([]dcb.Event{batch[0], batch[1]}, dcb.Event{Type: "Paid", ID: "pay-2"})},
		{"an event without id with held ones", "has no id", append([]dcb.Event{batch[0], batch[1]}, dcb.Event{Type: "Note"})},
		{"held ids in another order", "in their order", []dcb.Event{batch[1], batch[0]}},
	} {
		_, err := retry(c.events, nil)
		assert.ErrorIs(t, err, dcb.ErrIDConflict, c.name)
		assert.ErrorContains(t, err, c.why, c.name)
	}
	_, err = retry([]dcb.Event{{Type: "A", ID: "x"}, {Type: "B", ID: "x"}}, nil)
	assert.ErrorIs(t, err, dcb.ErrInvalidEvent, "one id twice in a batch")
	_, err = retry([]dcb.Event{{Type: "A", ID: strings.Repeat("i", dcb.MaxIDLength+1)}}, nil)
	assert.ErrorIs(t, err, dcb.ErrInvalidEvent, "an id over the limit")

	// New ids append as usual, checked against their condition.
	_, err = s.Append(t.Context(), []dcb.Event{{Type: "Paid", Tags: []string{"order:1"}, ID: "pay-9"}}, cond)
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)

	s = reopen(t, s)
	got, err = retry(batch, cond)
	require.NoError(t, err, "after a reopen")
	assert.Equal(t, last, got)
}

// TestConcurrentRetries: twenty callers append the same batch of IDs at
// once: exactly one writes it, every one is answered with its positions.
func TestConcurrentRetries(t *testing.T) {
	s := open(t, t.TempDir())
	appendOK(t, s, ev("Seed"))
	batch := []dcb.Event{{Type: "A", ID: "a"}, {Type: "B", ID: "b"}, {Type: "C", ID: "c"}}
	var wg sync.WaitGroup
	lasts := make([]uint64, 20)
	errs := make([]error, 20)
	start := make(chan struct{})
	for i := range lasts {
		wg.Go(func() {
			<-start
			lasts[i], errs[i] = s.Append(t.Context(), batch, nil)
		})
	}
	close(start)
	wg.Wait()
	for i := range lasts {
		require.NoError(t, errs[i], "caller %d", i)
		assert.Equal(t, uint64(4), lasts[i], "caller %d", i)
	}
	assert.Equal(t, uint64(4), s.Head(), "one write")

	// Through AppendMany, in one group: the second item repeats the first.
	more := []dcb.Event{{Type: "D", ID: "d"}}
	out := s.AppendMany(t.Context(), []store.AppendItem{{Events: more}, {Events: more}})
	require.NoError(t, out[0].Err)
	require.NoError(t, out[1].Err)
	assert.Equal(t, uint64(5), out[0].Last)
	assert.Equal(t, uint64(5), out[1].Last)
	assert.Equal(t, uint64(5), s.Head())
}

// TestIDsAfterACrash: a store whose files are as a crash left them (copied
// while it runs, so no index snapshot) knows its IDs when it opens again,
// with the index files (read from the WAL since the index files hold none)
// and without any (the whole index rebuilt from the WAL).
func TestIDsAfterACrash(t *testing.T) {
	for _, c := range []struct {
		name       string
		projection *store.Projection
	}{
		{"index files", nil},
		{"no projection files", &store.Projection{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := store.Open(dir, &store.Options{Projection: c.projection})
			require.NoError(t, err)
			defer s.Close()
			var last uint64
			for i := range 50 {
				events := []dcb.Event{{Type: "E", Tags: []string{"t"}, ID: "id-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}}
				last, err = s.Append(t.Context(), events, nil)
				require.NoError(t, err)
			}
			require.NoError(t, s.WaitProjected(t.Context(), last))
			require.Eventually(t, func() bool { return s.Stats().Checkpointed == last }, time.Minute, 10*time.Millisecond, "a checkpoint under the running store")
			crashed := t.TempDir()
			require.NoError(t, os.CopyFS(crashed, os.DirFS(dir)))
			require.NoError(t, os.Remove(filepath.Join(crashed, "LOCK")))

			c2, err := store.Open(crashed, &store.Options{Projection: c.projection})
			require.NoError(t, err)
			defer c2.Close()
			assert.False(t, c2.OpenReport().Projection.IndexFromSnapshot)
			got, err := c2.Append(t.Context(), []dcb.Event{{Type: "E", Tags: []string{"t"}, ID: "id-ab"}}, nil)
			require.NoError(t, err)
			assert.Equal(t, uint64(27), got, "a retry of the 27th append")
			assert.Equal(t, last, c2.Head())
			_, err = c2.Append(t.Context(), []dcb.Event{{Type: "Other", ID: "id-ab"}}, nil)
			assert.ErrorIs(t, err, dcb.ErrIDConflict)
		})
	}
}
