package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedStore fills a plain store in dir with n events of every shape
// (tags, data, metadata, IDs, a timestamp of its own or the store's), in
// appends of up to 1,500 events, and returns it open.
func seedStore(t testing.TB, dir string, from, n int) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	for i := from; i < from+n; {
		var batch []dcb.Event
		for ; i < from+n && len(batch) < 1500; i++ {
			e := dcb.Event{Type: fmt.Sprintf("T%d", i%3), Tags: []string{fmt.Sprintf("k:%d", i%7)}, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
			if i%2 == 0 {
				e.ID = fmt.Sprintf("e-%d", i)
			}
			if i%3 == 0 {
				e.Timestamp = time.Unix(1e9, int64(i)).UTC()
				e.Metadata = map[string]string{"by": "seed ü"}
			}
			batch = append(batch, e)
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
	return s
}

func push(t testing.TB, src store.Events, url, stream string) (PushReport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return Push(ctx, src, &Options{URL: url, Stream: stream})
}

// sameAsStream checks that the stream holds the events of s, exactly, and
// a marker where s holds a lost position's marker.
func sameAsStream(t *testing.T, url, stream string, s store.Events) {
	t.Helper()
	want := readAll(t, s)
	got := streamEvents(t, url, stream)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, "", mismatch(got[i], want[i], true), "position %d", i+1)
	}
}

// TestPushSeedsAStream: a single-machine store pushed to a new stream is
// the stream, event for event (IDs and timestamps kept), in batches of at
// most MaxAppendEvents; its directory then opens as a node, already caught
// up, that appends after it; a new node catches up from it. A push of a
// store that grew since adds what is new; one with nothing new, nothing.
func TestPushSeedsAStream(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	dir := t.TempDir()
	s := seedStore(t, dir, 0, 2500)
	rep, err := push(t, s, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Had: 0, Pushed: 2500, Head: 2500, Batches: 3}, rep)
	sameAsStream(t, url, stream, s)

	// It grew: the push adds what follows. Read through a follower, as
	// possum push does, while the store stays open.
	for i := 2500; i < 2510; i++ {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "More", ID: fmt.Sprintf("more-%d", i)}}, nil)
		require.NoError(t, err)
	}
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	rep, err = push(t, f, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Had: 2500, Pushed: 10, Head: 2510, Batches: 1}, rep)
	rep, err = push(t, f, url, stream)
	require.NoError(t, err)
	assert.Equal(t, PushReport{Stream: stream, Had: 2510, Head: 2510}, rep)
	sameAsStream(t, url, stream, s)
	want := readAll(t, s)
	require.NoError(t, s.Close())

	n := openNode(t, url, stream, dir, 0)
	last, err := n.Append(t.Context(), []dcb.Event{{Type: "AfterPush"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(2511), last)
	last, err = n.Append(t.Context(), []dcb.Event{want[0].Event}, nil)
	require.NoError(t, err, "a pushed event sent again is a retry")
	assert.Equal(t, uint64(1), last)
	fresh := openNode(t, url, stream, t.TempDir(), 0)
	head, err := fresh.CatchUp(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(2511), head)
	converged(t, url, stream, n, fresh)
}

// TestPushRefuses: a push onto a stream that is not a copy of the store's
// first events (other events, more events than the store, a stream of
// another layout), of an empty store, or of a store holding an event no
// batch can carry is refused, naming why, and publishes nothing.
func TestPushRefuses(t *testing.T) {
	url := sharedSingle(t)
	js := jsFor(t, url)
	mine := seedStore(t, t.TempDir(), 0, 20)
	other := seedStore(t, t.TempDir(), 100, 10)
	longer := seedStore(t, t.TempDir(), 0, 30)

	check := func(name string, src store.Events, stream string, want string) {
		t.Helper()
		var before uint64
		if st, err := js.Stream(t.Context(), stream); err == nil {
			before = st.CachedInfo().State.LastSeq
		}
		_, err := push(t, src, url, stream)
		require.Error(t, err, name)
		assert.ErrorContains(t, err, want, name)
		assert.True(t, strings.HasPrefix(err.Error(), "cluster: "), "%s: %v", name, err)
		st, err := js.Stream(t.Context(), stream)
		if before == 0 && err != nil {
			return // not even created
		}
		require.NoError(t, err, name)
		assert.Equal(t, before, st.CachedInfo().State.LastSeq, "%s: nothing published", name)
	}

	s1 := newStreamName()
	_, err := push(t, other, url, s1)
	require.NoError(t, err)
	check("other events", mine, s1, "position 1 differs in its type")
	s2 := newStreamName()
	_, err = push(t, longer, url, s2)
	require.NoError(t, err)
	check("a longer stream", mine, s2, "holds 30 events, the store only 20")

	empty, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer empty.Close()
	check("an empty store", empty, newStreamName(), "the store holds no events")

	big := seedStore(t, t.TempDir(), 0, 3)
	_, err = big.Append(t.Context(), []dcb.Event{{Type: "Big", Data: []byte(`"` + strings.Repeat("x", 2<<20) + `"`)}}, nil)
	require.NoError(t, err)
	check("an event over max_payload", big, newStreamName(), "the event at position 4 cannot travel in the stream, nothing pushed")

	s3 := newStreamName()
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: s3, Subjects: []string{s3 + ".>"}})
	require.NoError(t, err)
	check("a stream of another configuration", mine, s3, "deny_delete")
}
