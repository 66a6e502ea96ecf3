package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openNode opens a node on stream at url with its replica in dir, closed
// when t ends.
func openNode(t testing.TB, url, stream, dir string, replicas int) *Node {
	t.Helper()
	return openNodeWith(t, dir, &Options{URL: url, Stream: stream, Replicas: replicas})
}

// openNodeWith opens a node with o, closed when t ends.
func openNodeWith(t testing.TB, dir string, o *Options) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, dir, o)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// readAll returns every event of s.
func readAll(t testing.TB, s store.Events) []dcb.SequencedEvent {
	t.Helper()
	return readQuery(t, s, dcb.All(), store.ReadOptions{})
}

// streamEvents returns the events the stream holds, decoded, in order.
func streamEvents(t testing.TB, url, stream string) []streamEvent {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	last := st.CachedInfo().State.LastSeq
	var out []streamEvent
	for seq := uint64(1); seq <= last; seq++ {
		m, err := st.GetMsg(ctx, seq)
		require.NoError(t, err)
		e, _, err := decodeEvent(stream, m.Subject, m.Header, m.Data)
		require.NoError(t, err, "position %d", seq)
		out = append(out, e)
	}
	return out
}

func tagQuery(tags ...string) dcb.Query {
	return dcb.Query{Items: []dcb.QueryItem{{Tags: tags}}}
}

func TestAppendReadOneNode(t *testing.T) {
	url := sharedSingle(t)
	name := newStreamName()
	n := openNode(t, url, name, t.TempDir(), 0)
	ctx := t.Context()

	last, err := n.Append(ctx, []dcb.Event{
		{Type: "CourseDefined", Tags: []string{"course:c1"}, Data: []byte(`{"capacity": 2}`), Metadata: map[string]string{"user": "ü"}},
		{Type: "Course.Renamed", Tags: []string{"course:c1", "a,b\nc", "course:c1"}},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), last)
	assert.Equal(t, uint64(2), n.Head(), "read-your-writes: the replica holds the append once it is answered")

	// A condition on an event that exists fails; beyond it, it holds.
	_, err = n.Append(ctx, []dcb.Event{{Type: "X", Tags: []string{"course:c1"}}}, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("course:c1"), After: 1})
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	last, err = n.Append(ctx, []dcb.Event{{Type: "X", Tags: []string{"course:c1"}}}, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("course:c1"), After: 2})
	require.NoError(t, err)
	assert.Equal(t, uint64(3), last)

	got := readAll(t, n)
	require.Len(t, got, 3)
	assert.Equal(t, "CourseDefined", got[0].Type)
	assert.Equal(t, `{"capacity": 2}`, string(got[0].Data))
	assert.Equal(t, map[string]string{"user": "ü"}, got[0].Metadata)
	assert.Equal(t, []string{"course:c1", "a,b\nc"}, got[1].Tags, "duplicate tags dropped, as the store does")

	// The stream holds the same events at the same positions, times and
	// ids included.
	se := streamEvents(t, url, name)
	require.Len(t, se, 3)
	for i, e := range se {
		assert.Equal(t, "", differs(e.Event, got[i].Event), "position %d", i+1)
		assert.False(t, e.Timestamp.IsZero())
	}
	assert.Equal(t, uint64(2), n.ClusterStats().Batches, "the rejected append published nothing")
}

// TestIDsAndTimestampsKept: an event's ID and a timestamp its caller set
// travel through the stream exactly (to the nanosecond, in UTC) to every
// replica; the events of an append without one share the time the node
// stamped them with, the stream's; and a stopped node's directory holds
// them as a plain store.
func TestIDsAndTimestampsKept(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	dir := t.TempDir()
	a := openNode(t, url, stream, dir, 0)
	b := openNode(t, url, stream, t.TempDir(), 0)
	own := time.Date(1999, 12, 31, 23, 59, 59, 123456789, time.FixedZone("X", -5*3600))
	before := time.Now()
	last, err := a.Append(t.Context(), []dcb.Event{
		{Type: "Imported", ID: "e-1", Timestamp: own},
		{Type: "New", ID: "e-2"},
		{Type: "New"},
	}, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(3), last)
	_, err = b.Append(t.Context(), []dcb.Event{{Type: "Later", ID: "e-4", Timestamp: time.Unix(0, 1)}}, nil)
	require.NoError(t, err)
	_, err = a.CatchUp(t.Context())
	require.NoError(t, err)

	check := func(how string, got []dcb.SequencedEvent) {
		t.Helper()
		require.Len(t, got, 4, how)
		assert.Equal(t, own.UTC(), got[0].Timestamp, "%s: the caller's time, exactly, in UTC", how)
		assert.Equal(t, time.UTC, got[0].Timestamp.Location(), how)
		assert.Equal(t, got[1].Timestamp, got[2].Timestamp, "%s: one time for the events of an append without one", how)
		assert.False(t, got[1].Timestamp.Before(before.Truncate(time.Second)), "%s: the node's time is now", how)
		assert.Equal(t, time.Unix(0, 1).UTC(), got[3].Timestamp, how)
		assert.Equal(t, []string{"e-1", "e-2", "", "e-4"}, []string{got[0].ID, got[1].ID, got[2].ID, got[3].ID}, how)
	}
	check("node a", readAll(t, a))
	check("node b", readAll(t, b))
	converged(t, url, stream, a, b)
	require.NoError(t, a.Close())
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	check("node a's directory as a store", readAll(t, s))
}

// TestNodeDecidesAsAStore: a random run of appends, some under conditions
// (on tags, types, After before, at and beyond the head, the empty query),
// some with event IDs and timestamps of their own, some sending an earlier
// append again (a retry, whatever its condition) or reusing an ID for
// another event, gets from a node exactly the answers a plain store gives:
// the same positions, the same condition failures and ID conflicts, and
// the same events, IDs and given timestamps included.
func TestNodeDecidesAsAStore(t *testing.T) {
	url := sharedSingle(t)
	n := openNode(t, url, newStreamName(), t.TempDir(), 0)
	ref, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { ref.Close() })
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	tags := []string{"a", "b", "c", "d"}
	types := []string{"T1", "T2", "T3"}
	pick := func(from []string) string { return from[rng.IntN(len(from))] }
	var sent [][]dcb.Event // the appends sent with ids
	ops := scaled(t, 200)
	retries, conflicts := 0, 0
	for i := range ops {
		batch := make([]dcb.Event, 1+rng.IntN(3))
		for j := range batch {
			batch[j] = dcb.Event{Type: pick(types), Tags: []string{pick(tags)}, Data: fmt.Appendf(nil, `{"op":%d}`, i)}
			if rng.IntN(3) == 0 {
				batch[j].Timestamp = time.Unix(0, rng.Int64N(2.9e18)-2e18) // 1906 to 1998
			}
		}
		switch k := rng.IntN(10); {
		case k < 4:
			for j := range batch {
				batch[j].ID = fmt.Sprintf("op%d.%d", i, j)
			}
			sent = append(sent, batch)
		case k < 6 && len(sent) > 0:
			batch = sent[rng.IntN(len(sent))] // sent again
		case k < 7 && len(sent) > 0:
			other := sent[rng.IntN(len(sent))]
			batch[0].ID = other[rng.IntN(len(other))].ID // another event with a held id
		}
		var cond *dcb.AppendCondition
		if rng.IntN(4) > 0 {
			c := dcb.AppendCondition{After: uint64(rng.IntN(int(ref.Head()) + 3))}
			switch rng.IntN(3) {
			case 0:
				c.FailIfEventsMatch = tagQuery(pick(tags))
			case 1:
				c.FailIfEventsMatch = dcb.Query{Items: []dcb.QueryItem{{Types: []string{pick(types)}, Tags: []string{pick(tags)}}, {Types: []string{pick(types)}}}}
			case 2:
				c.FailIfEventsMatch = dcb.All()
			}
			cond = &c
		}
		headBefore := ref.Head()
		want, wantErr := ref.Append(ctx, batch, cond)
		got, gotErr := n.Append(ctx, batch, cond)
		require.Equal(t, wantErr != nil, gotErr != nil, "op %d: store says %v, node %v", i, wantErr, gotErr)
		switch {
		case errors.Is(wantErr, dcb.ErrIDConflict):
			require.ErrorIs(t, gotErr, dcb.ErrIDConflict, "op %d", i)
			conflicts++
			continue
		case wantErr != nil:
			require.ErrorIs(t, wantErr, dcb.ErrAppendConditionFailed, "op %d", i)
			require.ErrorIs(t, gotErr, dcb.ErrAppendConditionFailed, "op %d", i)
			continue
		case want <= headBefore:
			retries++
		}
		require.Equal(t, want, got, "op %d", i)
	}
	require.NotZero(t, retries)
	require.NotZero(t, conflicts)
	a, b := readAll(t, ref), readAll(t, n)
	require.Equal(t, len(a), len(b))
	for i := range a {
		// Each stamped the events its caller gave no time (those after
		// 1998) itself.
		if a[i].Timestamp.Year() > 1998 && b[i].Timestamp.Year() > 1998 {
			b[i].Timestamp = a[i].Timestamp
		}
		require.Equal(t, "", differs(a[i].Event, b[i].Event), "position %d", i+1)
	}
	t.Logf("%d appends, %d events: %d retries answered, %d id conflicts", ops, len(a), retries, conflicts)
}

// TestAppendManyInOneBatch: independent appends handed over together are
// checked in order, each against those accepted before it, and travel in
// one batch; an append rejected because of one before it in the same batch
// is told so once that one is committed.
func TestAppendManyInOneBatch(t *testing.T) {
	n := openNode(t, sharedSingle(t), newStreamName(), t.TempDir(), 0)
	ctx := t.Context()
	only := func(tag string) *dcb.AppendCondition {
		return &dcb.AppendCondition{FailIfEventsMatch: tagQuery(tag)}
	}
	out := n.AppendMany(ctx, []store.AppendItem{
		{Events: []dcb.Event{{Type: "Registered", Tags: []string{"user:ann"}}}, Condition: only("user:ann")},
		{Events: []dcb.Event{{Type: "Registered", Tags: []string{"user:ann"}}}, Condition: only("user:ann")},
		{Events: []dcb.Event{{Type: "Registered", Tags: []string{"user:bob"}}, {Type: "Welcomed", Tags: []string{"user:bob"}}}, Condition: only("user:bob")},
		{Events: nil},
	})
	require.NoError(t, out[0].Err)
	assert.Equal(t, uint64(1), out[0].Last)
	assert.ErrorIs(t, out[1].Err, dcb.ErrAppendConditionFailed)
	require.NoError(t, out[2].Err)
	assert.Equal(t, uint64(3), out[2].Last)
	assert.ErrorIs(t, out[3].Err, dcb.ErrInvalidEvent)
	assert.Equal(t, uint64(1), n.ClusterStats().Batches, "one batch carried both accepted appends")
}

// TestStoppedNodeIsAStore: a stopped node's directory is a plain store:
// store.Open opens it and reads the events the node applied; a node opens
// on it again afterwards (nothing was appended to it meanwhile).
func TestStoppedNodeIsAStore(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	dir := t.TempDir()
	n := openNode(t, url, stream, dir, 0)
	_, err := n.Append(t.Context(), []dcb.Event{{Type: "A", Tags: []string{"t"}}, {Type: "B"}}, nil)
	require.NoError(t, err)
	require.NoError(t, n.Close())
	_, err = n.Append(t.Context(), []dcb.Event{{Type: "C"}}, nil)
	assert.ErrorIs(t, err, store.ErrClosed)

	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	got := readAll(t, s)
	require.NoError(t, s.Close())
	require.Len(t, got, 2)
	assert.Equal(t, "B", got[1].Type)

	n = openNode(t, url, stream, dir, 0)
	last, err := n.Append(t.Context(), []dcb.Event{{Type: "C"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), last)
}
