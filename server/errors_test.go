package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSentinelsAcrossTheWire: every error the client returns wraps the
// sentinel the store returned, so callers branch with errors.Is as they
// would embedded; nothing is written by a failed append.
func TestSentinelsAcrossTheWire(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	ctx := t.Context()
	course := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c1"}}}}
	_, err := c.Append(ctx, []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}}}, nil)
	require.NoError(t, err)

	t.Run("append condition failed", func(t *testing.T) {
		_, err := c.Append(ctx, []dcb.Event{{Type: "X", Tags: []string{"course:c1"}}}, &dcb.AppendCondition{FailIfEventsMatch: course})
		assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
		_, embedded := s.st.Append(ctx, []dcb.Event{{Type: "X"}}, &dcb.AppendCondition{FailIfEventsMatch: course})
		assert.ErrorIs(t, embedded, dcb.ErrAppendConditionFailed)
		pos, err := c.Append(ctx, []dcb.Event{{Type: "X", Tags: []string{"course:c1"}}}, &dcb.AppendCondition{FailIfEventsMatch: course, After: 1})
		require.NoError(t, err, "After is exclusive")
		assert.Equal(t, uint64(2), pos)
	})
	head := s.st.Head()
	t.Run("invalid event", func(t *testing.T) {
		for _, evs := range [][]dcb.Event{nil, {{Type: ""}}, {{Type: "T", Data: json.RawMessage(`{`)}}, {{Type: "T", Tags: []string{""}}}} {
			_, err := c.Append(ctx, evs, nil)
			assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
		}
		// Over the body limit: the server refuses it (413), and the
		// client says the batch cannot be stored.
		big := dcb.Event{Type: "Big", Data: json.RawMessage(`"` + strings.Repeat("x", server.DefaultMaxBodyBytes) + `"`)}
		_, err := c.Append(ctx, []dcb.Event{big}, nil)
		assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
		assert.ErrorContains(t, err, "16 MiB")
	})
	t.Run("invalid query", func(t *testing.T) {
		bad := dcb.Query{Items: []dcb.QueryItem{{}}}
		_, err := c.Append(ctx, []dcb.Event{{Type: "T"}}, &dcb.AppendCondition{FailIfEventsMatch: bad})
		assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
		_, err = collect(c.Read(ctx, bad, store.ReadOptions{}))
		assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
		_, err = collect(c.Read(ctx, dcb.All(), store.ReadOptions{Limit: -1}))
		assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
		_, err = collect(c.Subscribe(ctx, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{""}}}}, 0))
		assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
	})
	assert.Equal(t, head, s.st.Head(), "nothing written by a failed append")

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var err error
		for _, err = range c.Subscribe(ctx, dcb.All(), 0) {
			if err != nil {
				break
			}
			cancel() // after the first event
		}
		assert.ErrorIs(t, err, context.Canceled, "a Subscribe whose context ends yields ctx.Err()")
	})

	t.Run("closed", func(t *testing.T) {
		// A running subscription ends with ErrClosed when the store closes.
		subscribed := make(chan error, 1)
		go func() {
			var err error
			for _, err = range c.Subscribe(ctx, dcb.All(), s.st.Head()) {
				if err != nil {
					break
				}
			}
			subscribed <- err
		}()
		require.Eventually(t, func() bool { return s.srv.Streams() == 1 }, testWait, pollEvery)
		require.NoError(t, s.st.Close())
		assert.ErrorIs(t, <-subscribed, store.ErrClosed)
		_, err := c.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
		assert.ErrorIs(t, err, store.ErrClosed)
		_, err = collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
		assert.ErrorIs(t, err, store.ErrClosed)
		_, err = collect(c.Subscribe(ctx, dcb.All(), 0))
		assert.ErrorIs(t, err, store.ErrClosed)
	})
}

// failingStore fails every call with err: the errors a real store gives
// only after damage or a failed fsync.
type failingStore struct{ err error }

func (f failingStore) Append(context.Context, []dcb.Event, *dcb.AppendCondition) (uint64, error) {
	return 0, fmt.Errorf("store: append: %w", f.err)
}

func (f failingStore) Read(context.Context, dcb.Query, store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return func(yield func(dcb.SequencedEvent, error) bool) {
		yield(dcb.SequencedEvent{}, fmt.Errorf("store: read position 7: %w", f.err))
	}
}

func (f failingStore) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return f.Read(ctx, q, store.ReadOptions{})
}

func (f failingStore) HeadContext(context.Context) (uint64, error) { return 7, nil }

// serveFake serves fake on the socket of a store opened for its socket
// alone, until the test ends.
func serveFake(t *testing.T, fake store.EventStore) *served {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	return serveAs(t, st, server.New(fake, nil))
}

// TestDamageAcrossTheWire: ErrCorrupt, ErrPoisoned and ErrLocked from the
// store reach the client's caller as themselves.
func TestDamageAcrossTheWire(t *testing.T) {
	for _, sentinel := range []error{store.ErrCorrupt, store.ErrPoisoned, store.ErrLocked, store.ErrClosed} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			ctx := t.Context()
			dir := serveFake(t, failingStore{sentinel}).dir
			c, err := client.Dial(dir)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
			assert.ErrorIs(t, err, sentinel)
			assert.ErrorContains(t, err, "store: append")
			_, err = collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
			assert.ErrorIs(t, err, sentinel)
			assert.ErrorContains(t, err, "position 7")
			_, err = collect(c.Subscribe(ctx, dcb.All(), 0))
			assert.ErrorIs(t, err, sentinel)
			head, err := c.HeadContext(ctx)
			require.NoError(t, err)
			assert.Equal(t, uint64(7), head)
		})
	}
}

// TestSilentStream: a stream on which the server sends nothing, not even a
// heartbeat (a hung server, a dead link), fails with client.ErrSilent
// after three heartbeat intervals rather than hanging.
func TestSilentStream(t *testing.T) {
	hung := make(chan struct{})
	defer close(hung)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/head" {
			_, _ = io.WriteString(w, `{"head":0}`)
			return
		}
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select { // and then nothing
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c, err := client.DialOptions(ts.URL, &client.Options{Heartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	_, err = collect(c.Subscribe(t.Context(), dcb.All(), 0))
	assert.ErrorIs(t, err, client.ErrSilent)
	_, err = collect(c.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	assert.ErrorIs(t, err, client.ErrSilent)
}

// TestHeartbeats: an idle subscription gets heartbeat lines, so a client
// waiting longer than three heartbeat intervals for an event does not take
// the server for dead.
func TestHeartbeats(t *testing.T) {
	s := serve(t, nil)
	ctx := t.Context()
	c := s.dial(t, &client.Options{Heartbeat: 50 * time.Millisecond})
	got := make(chan error, 1)
	go func() {
		for e, err := range c.Subscribe(ctx, dcb.All(), 0) {
			if err == nil && e.Position != 1 {
				err = fmt.Errorf("got position %d", e.Position)
			}
			got <- err
			return
		}
	}()
	require.Eventually(t, func() bool { return s.srv.Streams() == 1 }, testWait, pollEvery)
	// Another stream, read raw, counts heartbeats: six of them take at
	// least six intervals, twice what the client tolerates of silence.
	resp, err := s.rawHTTP().Get("http://possum/stream?follow=true&heartbeat=50")
	require.NoError(t, err)
	br := bufio.NewReader(resp.Body)
	for range 6 {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "{\"heartbeat\":true}\n", line)
	}
	resp.Body.Close()
	_, err = s.st.Append(ctx, []dcb.Event{{Type: "Late"}}, nil)
	require.NoError(t, err)
	assert.NoError(t, <-got, "the subscription lived on, kept by heartbeats")
}

// partialStore yields n small events, then fails with err: damage met
// part way through a read.
type partialStore struct {
	failingStore
	n int
}

func (p partialStore) Read(context.Context, dcb.Query, store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return func(yield func(dcb.SequencedEvent, error) bool) {
		for i := range p.n {
			if !yield(dcb.SequencedEvent{Event: dcb.Event{Type: "T"}, Position: uint64(i + 1)}, nil) {
				return
			}
		}
		yield(dcb.SequencedEvent{}, fmt.Errorf("store: read position %d: %w", p.n+1, p.err))
	}
}

// TestReadFailsBeforeItWrites: a read that meets a damaged record before
// it sent anything answers the error (500 corrupt), even when it had
// events in hand; one that already sent part of the array cuts it short,
// so that the client sees a broken array, never a shorter valid one.
func TestReadFailsBeforeItWrites(t *testing.T) {
	for _, tc := range []struct {
		events int
		cut    bool
	}{{0, false}, {3, false}, {5000, true}} {
		t.Run(fmt.Sprint(tc.events), func(t *testing.T) {
			s := serveFake(t, partialStore{failingStore{store.ErrCorrupt}, tc.events})
			resp, err := s.rawHTTP().Get("http://possum/read")
			require.NoError(t, err)
			defer resp.Body.Close()
			if tc.cut {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				var events []json.RawMessage
				assert.Error(t, json.NewDecoder(resp.Body).Decode(&events), "a broken array")
				return
			}
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			msg, code := errorBody(t, resp)
			assert.Equal(t, "corrupt", code)
			assert.Contains(t, msg, fmt.Sprintf("position %d", tc.events+1))
		})
	}
}
