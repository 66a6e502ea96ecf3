package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lost positions (issue 20) on a cluster: a store's markers pushed to a
// stream arrive as markers on every node, and a node checks conditions
// against them as the store does.

// markedStore makes a plain store in dir whose position i+1 is what
// kinds[i] says, and returns it open: 'e' an event of type Order tagged
// o:<position> with data, an ID and a timestamp of its own, the same in
// every store made so; 'K' a lost marker of known type Paid tagged o:1;
// 'X' one of type Paid tagged o:2; 'U' a lost marker of unknown type.
func markedStore(t testing.TB, dir, kinds string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	addMarked(t, s, kinds)
	return s
}

// addMarked appends to s what kinds says of the positions after its head
// (see markedStore).
func addMarked(t testing.TB, s *store.Store, kinds string) {
	t.Helper()
	ctx := t.Context()
	for _, k := range kinds {
		head := s.Head()
		pos := head + 1
		var err error
		switch k {
		case 'e':
			_, err = s.Append(ctx, []dcb.Event{{
				Type: "Order", Tags: []string{fmt.Sprintf("o:%d", pos)}, Data: fmt.Appendf(nil, `{"n":%d}`, pos),
				Metadata: map[string]string{"by": "test"}, ID: fmt.Sprintf("ev-%d", pos), Timestamp: time.Unix(1.7e9, int64(pos)).UTC(),
			}}, &dcb.AppendCondition{FailIfEventsMatch: dcb.All(), After: head})
		case 'K':
			_, err = s.AppendLost(ctx, head, []dcb.Event{{Type: "Paid", Tags: []string{"o:1"}}}, "")
		case 'X':
			_, err = s.AppendLost(ctx, head, []dcb.Event{{Type: "Paid", Tags: []string{"o:2"}}}, "")
		case 'U':
			_, err = s.AppendLost(ctx, head, []dcb.Event{{}}, "")
		default:
			t.Fatalf("kind %q", k)
		}
		require.NoError(t, err)
	}
}

// markerQueries are queries whose reads a node must answer as the store
// does: by the type and tags of a known marker, and unknown markers in
// every one.
var markerQueries = map[string]dcb.Query{
	"all":             dcb.All(),
	"type Paid":       {Items: []dcb.QueryItem{{Types: []string{"Paid"}}}},
	"type Order":      {Items: []dcb.QueryItem{{Types: []string{"Order"}}}},
	"tag o:1":         tagQuery("o:1"),
	"tag o:6":         tagQuery("o:6"),
	"no such tag":     tagQuery("o:99"),
	"Paid and o:2":    {Items: []dcb.QueryItem{{Types: []string{"Paid"}, Tags: []string{"o:2"}}}},
	"type Order, o:3": {Items: []dcb.QueryItem{{Types: []string{"Order"}, Tags: []string{"o:3"}}}},
}

// sameReads checks that every one of markerQueries reads the same from
// got as from want, forwards and backwards.
func sameReads(t *testing.T, want, got store.Events) {
	t.Helper()
	for name, q := range markerQueries {
		for _, back := range []bool{false, true} {
			o := store.ReadOptions{Backwards: back}
			w, g := readQuery(t, want, q, o), readQuery(t, got, q, o)
			require.Equal(t, w, g, "%s, backwards %v", name, back)
		}
	}
}

// readQuery returns the events of s that a Read of q with o yields.
func readQuery(t testing.TB, s store.Events, q dcb.Query, o store.ReadOptions) []dcb.SequencedEvent {
	t.Helper()
	var out []dcb.SequencedEvent
	for e, err := range s.Read(t.Context(), q, o) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// lostRanges returns the lost positions the LOST file in dir lists.
func lostRanges(t testing.TB, dir string) []storedir.Range {
	t.Helper()
	ls, err := storedir.ReadLosses(dir)
	require.NoError(t, err)
	return storedir.LostRanges(ls)
}

// TestPushCarriesLostPositions: a store with lost positions (a known
// marker and an unknown one, then events) pushed to a stream arrives
// whole on every node: the stream holds markers there (Possum-Lost, the
// known type and tags), each node's replica reads back the store's very
// SequencedEvents, Lost set at 4 and 5, answers every query as the store
// does, and lists 4..5 in its LOST file. A node stopped with a marker at
// its head is checked against the stream when it opens again and catches
// up with what a second push added; a push with nothing new is a no-op.
func TestPushCarriesLostPositions(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	srcDir := filepath.Join(t.TempDir(), "src")
	src := markedStore(t, srcDir, "eeeKU")
	rep, err := push(t, src, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Pushed: 5, Head: 5, Batches: 1}, rep)

	in := streamEvents(t, url, stream)
	require.Len(t, in, 5)
	assert.Equal(t, streamEvent{Event: dcb.Event{Type: "Paid", Tags: []string{"o:1"}, Timestamp: in[3].Timestamp}, Lost: true}, in[3])
	assert.Equal(t, streamEvent{Event: dcb.Event{Timestamp: in[4].Timestamp}, Lost: true}, in[4])
	sameAsStream(t, url, stream, src)

	// A node catches up to the unknown marker at 5, its head, and stops.
	dirA := t.TempDir()
	a := openNode(t, url, stream, dirA, 0)
	head, err := a.CatchUp(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint64(5), head)
	require.Equal(t, readAll(t, src), readAll(t, a))
	require.NoError(t, a.Close())

	// The store grows; a push adds what is new. Read through a follower,
	// as possum push does, which checks the stream's markers against the
	// store's.
	addMarked(t, src, "ee")
	f, err := store.Follow(srcDir, nil)
	require.NoError(t, err)
	defer f.Close()
	rep, err = push(t, f, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Had: 5, Pushed: 2, Head: 7, Batches: 1}, rep)
	rep, err = push(t, f, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Had: 7, Head: 7}, rep, "nothing new: nothing pushed")

	a = openNode(t, url, stream, dirA, 0) // checked against the stream's marker at 5
	b := openNode(t, url, stream, t.TempDir(), 0)
	want := readAll(t, src)
	require.Len(t, want, 7)
	for _, n := range []*Node{a, b} {
		head, err := n.CatchUp(t.Context())
		require.NoError(t, err)
		require.Equal(t, uint64(7), head)
		got := readAll(t, n)
		require.Equal(t, want, got, "the store's events and markers, field for field")
		for _, e := range got {
			assert.Equal(t, e.Position == 4 || e.Position == 5, e.Lost, "position %d", e.Position)
		}
		sameReads(t, src, n)
		assert.Equal(t, []storedir.Range{{From: 4, To: 5}}, lostRanges(t, n.Dir()))
	}
	converged(t, url, stream, a, b)

	// Both open again on their directories, checked against the stream.
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	for _, dir := range []string{dirA, b.Dir()} {
		n := openNode(t, url, stream, dir, 0)
		require.Equal(t, want, readAll(t, n))
	}
}

// TestLostPositionsRefused: a push onto a stream, or a replica opened on a
// stream, where one holds a marker and the other an event at the same
// position, or markers of another type or tags, is refused naming it, and
// nothing is written.
func TestLostPositionsRefused(t *testing.T) {
	url := sharedSingle(t)
	js := jsFor(t, url)
	streams := map[string]string{}
	for _, kinds := range []string{"eeeee", "eeeKU", "eeeXU", "eeeKe"} {
		streams[kinds] = newStreamName()
		_, err := push(t, markedStore(t, t.TempDir(), kinds), url, streams[kinds])
		require.NoError(t, err)
	}

	pushes := []struct{ onto, store, want string }{
		{"eeeKU", "eeeee", "position 4 is a lost position's marker, where the store holds an event"},
		{"eeeee", "eeeKU", "position 4 is an event, where the store holds a lost position's marker"},
		{"eeeKU", "eeeXU", "position 4 differs in its tags"},
		{"eeeKU", "eeeKUee", ""}, // a copy of the stream, grown
	}
	for _, c := range pushes {
		name := c.store + " onto " + c.onto
		stream := newStreamName()
		_, err := push(t, markedStore(t, t.TempDir(), c.onto), url, stream)
		require.NoError(t, err)
		_, err = push(t, markedStore(t, t.TempDir(), c.store), url, stream)
		if c.want == "" {
			require.NoError(t, err, name)
			continue
		}
		require.Error(t, err, name)
		assert.ErrorContains(t, err, c.want, name)
		assert.Equal(t, uint64(len(c.onto)), streamState(t, js, stream).State.LastSeq, "%s: nothing pushed", name)
	}

	replicas := []struct{ stream, dir, want string }{
		{"eeeee", "eeeeU", "position 5 is a lost position's marker, where the stream holds an event"},
		{"eeeKU", "eeeee", "position 5 is an event, where the stream holds a lost position's marker"},
		{"eeeKe", "eeeK", ""},
		{"eeeKU", "eeeX", "position 4 differs in its tags"},
		{"eeeKU", "eeeU", "position 4 differs in its type"},
		{"eeeKU", "eeeK", ""},
		{"eeeKU", "eeeKU", ""},
	}
	for _, c := range replicas {
		name := c.dir + " on " + c.stream
		dir := t.TempDir()
		require.NoError(t, markedStore(t, dir, c.dir).Close())
		err := openErr(t, url, streams[c.stream], dir, 0)
		if c.want == "" {
			require.NoError(t, err, name)
			continue
		}
		require.Error(t, err, name)
		assert.ErrorContains(t, err, c.want, name)
		s, err := store.Open(dir, nil)
		require.NoError(t, err)
		assert.Equal(t, uint64(len(c.dir)), s.Head(), "%s: nothing applied", name)
		require.NoError(t, s.Close())
	}
}

// TestConditionOnLostPosition: a node fails an append whose condition's
// range holds a marker that might have matched (an unknown one, whatever
// the query; a known one whose type and tags match), as the store does,
// with an error wrapping dcb.ErrAppendConditionFailed that says the
// position was lost; a known marker that does not match fails nothing; a
// condition after the markers passes; a decision built on the node reads
// the markers and appends after them.
func TestConditionOnLostPosition(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	_, err := push(t, markedStore(t, t.TempDir(), "eeeKUee"), url, stream)
	require.NoError(t, err)
	n := openNode(t, url, stream, t.TempDir(), 0)
	_, err = n.CatchUp(t.Context())
	require.NoError(t, err)
	plain := markedStore(t, t.TempDir(), "eeeKUee")

	paid := dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Paid"}}}}
	cases := []struct {
		name  string
		cond  dcb.AppendCondition
		fails string // "" when the append goes in
	}{
		{"an unknown marker matches any query", dcb.AppendCondition{FailIfEventsMatch: tagQuery("o:99"), After: 3},
			"position 5, after the condition's 3, was lost (an event whose type and tags are unknown: it might have matched the condition"},
		{"a known marker of the query's type", dcb.AppendCondition{FailIfEventsMatch: paid, After: 3},
			`position 4, after the condition's 3, was lost (an event of type "Paid" whose type and tags match the condition`},
		{"a known marker of the query's tag", dcb.AppendCondition{FailIfEventsMatch: tagQuery("o:1"), After: 3},
			`position 4, after the condition's 3, was lost (an event of type "Paid"`},
		{"past the known marker, the unknown one", dcb.AppendCondition{FailIfEventsMatch: paid, After: 4},
			"position 5, after the condition's 4, was lost"},
		{"an event before the markers", dcb.AppendCondition{FailIfEventsMatch: tagQuery("o:3"), After: 2},
			"an event matching the condition exists after position 2"},
		{"after the markers", dcb.AppendCondition{FailIfEventsMatch: tagQuery("o:99"), After: 5}, ""},
	}
	for _, c := range cases {
		for what, s := range map[string]interface {
			Append(context.Context, []dcb.Event, *dcb.AppendCondition) (uint64, error)
			Head() uint64
		}{"node": n, "store": plain} {
			before := s.Head()
			_, err := s.Append(t.Context(), []dcb.Event{{Type: "Try", Tags: []string{"o:99"}}}, &c.cond)
			if c.fails == "" {
				require.NoError(t, err, "%s: %s", what, c.name)
				continue
			}
			require.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "%s: %s", what, c.name)
			assert.ErrorContains(t, err, c.fails, "%s: %s", what, c.name)
			assert.Equal(t, before, s.Head(), "%s: %s: nothing written", what, c.name)
		}
	}
	// The one that went in is at 8 on both; the node's is the stream's.
	assert.Equal(t, readAll(t, plain)[7].Type, readAll(t, n)[7].Type)

	// A decision reads the markers its query might match and appends
	// after them.
	var m decision.Model
	orders := decision.Add(&m, decision.Projection[int]{
		Query: dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Order"}}}},
		Fold:  func(k int, _ dcb.SequencedEvent) (int, error) { return k + 1, nil },
	})
	cond, err := m.Build(t.Context(), n)
	require.NoError(t, err)
	assert.Equal(t, 5, orders.State())
	lost := m.Lost()
	require.Len(t, lost, 1)
	assert.Equal(t, uint64(5), lost[0].Position, "the unknown marker; the known one is of another type")
	last, err := n.Append(t.Context(), []dcb.Event{{Type: "Order"}}, &cond)
	require.NoError(t, err)
	assert.Equal(t, uint64(9), last)
}

// TestUnrecordedLossKeepsApplying: a replica whose LOST file cannot be
// written (here a directory in its place) applies the stream's markers all
// the same, says so in the node's log, and goes on applying what follows:
// the markers are in its WAL, where possum verify finds them.
func TestUnrecordedLossKeepsApplying(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	src := markedStore(t, t.TempDir(), "eeeKUee")
	_, err := push(t, src, url, stream)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, storedir.LostFile), 0o755))
	var log child.Buffer
	n := openNodeWith(t, dir, &Options{URL: url, Stream: stream, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	head, err := n.CatchUp(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(7), head)
	require.Equal(t, readAll(t, src), readAll(t, n))
	assert.Contains(t, log.String(), "could not record them in its LOST file")
	last, err := n.Append(t.Context(), []dcb.Event{{Type: "After"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(8), last)
}
