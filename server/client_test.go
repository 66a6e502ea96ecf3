package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The client and the store share the interfaces code is written against.
var (
	_ store.Events     = (*client.Client)(nil)
	_ store.EventStore = (*client.Client)(nil)
	_ store.EventStore = (*store.Store)(nil)
)

// awkwardData are Data values that must come back byte for byte.
var awkwardData = []string{
	`{"a": 1,  "b":[1, 2]}`,        // inner whitespace kept
	`"{\"batchIndex\":0}"`,         // a string holding JSON: never unwrapped
	`42`, `-1.5e3`, `true`, `"é🦘"`, // scalars
	"{\n  \"pretty\": [\n    1\n  ]\n}", // line breaks inside
	`"<&>"`,                             // no HTML escaping
	`[]`,
	`{"big":"` + strings.Repeat("0123456789", 20_000) + `"}`, // longer than a read buffer
}

// TestClientMatchesEmbedded: appends through the client, then reads and
// subscribes through it, give what the embedded store gives, Data byte
// for byte.
func TestClientMatchesEmbedded(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	ctx := t.Context()
	var want []uint64
	for i, d := range awkwardData {
		e := dcb.Event{Type: fmt.Sprintf("T%d", i%3), Tags: []string{fmt.Sprintf("k:%d", i%2), "all"}, Data: json.RawMessage(d)}
		if i%2 == 0 {
			e.Metadata = map[string]string{"corr": fmt.Sprint(i), "x": "\"quoted\"\n"}
		}
		pos, err := c.Append(ctx, []dcb.Event{e}, nil)
		require.NoError(t, err)
		want = append(want, pos)
	}
	pos, err := c.Append(ctx, []dcb.Event{{Type: "Bare"}, {Type: "Two", Tags: []string{"a", "a", "b"}}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(awkwardData)+2), pos)
	head, err := c.HeadContext(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, head)

	queries := []dcb.Query{
		dcb.All(),
		{Items: []dcb.QueryItem{{Tags: []string{"k:1"}}}},
		{Items: []dcb.QueryItem{{Types: []string{"T0", "T2"}}, {Tags: []string{"b"}}}},
	}
	options := []store.ReadOptions{{}, {From: 3}, {Limit: 2}, {Backwards: true}, {Backwards: true, From: 5, Limit: 3}}
	for _, q := range queries {
		for _, o := range options {
			embedded, err := collect(s.st.Read(ctx, q, o))
			require.NoError(t, err)
			remote, err := collect(c.Read(ctx, q, o))
			require.NoError(t, err)
			assert.Equal(t, embedded, remote, "query %+v options %+v", q, o)
		}
	}
	all, err := collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	for i, d := range awkwardData {
		assert.Equal(t, d, string(all[i].Data), "data byte for byte")
	}

	// Subscribe: catch up, then follow.
	q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"all"}}}}
	embedded, err := collect(s.st.Read(ctx, q, store.ReadOptions{From: 3}))
	require.NoError(t, err)
	var got []dcb.SequencedEvent
	for e, err := range c.Subscribe(ctx, q, 2) {
		require.NoError(t, err)
		got = append(got, e)
		if len(got) == len(embedded) {
			// Caught up: the next one comes live.
			_, err := s.st.Append(ctx, []dcb.Event{{Type: "Live", Tags: []string{"all"}, Data: json.RawMessage("{\n}")}}, nil)
			require.NoError(t, err)
		}
		if len(got) == len(embedded)+1 {
			break
		}
	}
	live, err := collect(s.st.Read(ctx, q, store.ReadOptions{From: 3}))
	require.NoError(t, err)
	assert.Equal(t, live, got)
}

// TestConcurrentAppendsTravelTogether: the appends of many goroutines
// sharing one client, sent together, each get their own outcome: the
// condition of each is checked on its own, and nothing of a failed one is
// written.
func TestConcurrentAppendsTravelTogether(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	ctx := t.Context()
	const writers, rounds = 64, 5
	type outcome struct {
		pos uint64
		err error
	}
	results := make([][]outcome, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			tag := fmt.Sprintf("w:%d", w)
			q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}
			var last uint64
			for range rounds {
				// Odd writers use a stale After every other round: a
				// failed condition among successful ones.
				after := last
				if w%2 == 1 && len(results[w])%2 == 1 {
					after = 0
				}
				pos, err := c.Append(ctx, []dcb.Event{{Type: "W", Tags: []string{tag}, Data: json.RawMessage(fmt.Sprint(w))}},
					&dcb.AppendCondition{FailIfEventsMatch: q, After: after})
				results[w] = append(results[w], outcome{pos, err})
				if err == nil {
					last = pos
				}
			}
		})
	}
	// And an invalid query among them: its own error, no one else's.
	_, err := c.Append(ctx, []dcb.Event{{Type: "W"}}, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{}}}})
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
	wg.Wait()

	ok := 0
	for w, rs := range results {
		for i, r := range rs {
			if w%2 == 1 && i%2 == 1 {
				assert.ErrorIs(t, r.err, dcb.ErrAppendConditionFailed, "writer %d round %d", w, i)
				continue
			}
			require.NoError(t, r.err, "writer %d round %d", w, i)
			ok++
			evs, err := collect(s.st.Read(ctx, dcb.All(), store.ReadOptions{From: r.pos, Limit: 1}))
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint(w), string(evs[0].Data), "position %d is writer %d's", r.pos, w)
		}
	}
	assert.Equal(t, uint64(ok), s.st.Head(), "nothing written by the failed ones")

	// A context that ended before the append was sent: nothing written.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Append(cancelled, []dcb.Event{{Type: "Never"}}, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, uint64(ok), s.st.Head())
}

// TestClientClose: a closed client behaves as a closed store: a running
// subscription ends with ErrClosed, and so do later appends, reads,
// subscriptions, HeadContext and Stats.
func TestClientClose(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	ctx := t.Context()
	last, err := c.Append(ctx, []dcb.Event{{Type: "Before"}}, nil)
	require.NoError(t, err)

	delivered := make(chan dcb.SequencedEvent)
	ended := make(chan error, 1)
	go func() {
		for e, err := range c.Subscribe(ctx, dcb.All(), 0) {
			if err != nil {
				ended <- err
				return
			}
			delivered <- e
		}
		ended <- nil
	}()
	require.Equal(t, last, (<-delivered).Position, "the subscription runs")
	require.NoError(t, c.Close())
	require.ErrorIs(t, <-ended, store.ErrClosed, "a running subscription ends with ErrClosed")

	_, err = c.Append(ctx, []dcb.Event{{Type: "After"}}, nil)
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = collect(c.Subscribe(ctx, dcb.All(), 0))
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = c.HeadContext(ctx)
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = c.Stats(ctx)
	require.ErrorIs(t, err, store.ErrClosed)
	assert.Equal(t, last, s.st.Head(), "nothing was appended after Close")
}

// TestClientTimeoutOnlyWithoutDeadline: Options.Timeout bounds the calls
// whose context has no deadline, and only those: a caller's deadline, even
// a later one, is the caller's to set.
func TestClientTimeoutOnlyWithoutDeadline(t *testing.T) {
	s := serve(t, nil)
	tiny := &client.Options{Timeout: time.Nanosecond}
	_, err := client.DialOptions(s.dir, tiny)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no deadline: the timeout bounds Dial")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, s.dir, tiny)
	require.NoError(t, err, "the caller's deadline, not the timeout")
	defer c.Close()
	pos, err := c.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
	require.NoError(t, err)
	head, err := c.HeadContext(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, head)
	_, err = c.Stats(ctx)
	require.NoError(t, err)

	_, err = c.Append(context.Background(), []dcb.Event{{Type: "T"}}, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "no deadline: the timeout")
	_, err = c.HeadContext(context.Background())
	assert.ErrorIs(t, err, context.DeadlineExceeded, "no deadline: the timeout")
}

// TestClientLearnsTheBodyLimit: the client learns the server's request
// limit when it connects, and the appends of concurrent callers, each
// small enough alone, travel together only as far as they fit it.
func TestClientLearnsTheBodyLimit(t *testing.T) {
	const limit = 64 << 10
	s := serve(t, &server.Options{MaxBodyBytes: limit})
	c := s.dial(t, nil)
	assert.Equal(t, int64(limit), c.MaxBodyBytes())
	ctx := t.Context()
	data := json.RawMessage(`"` + strings.Repeat("x", 8<<10) + `"`)
	const writers = 64 // 512 KiB together, eight times the limit
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			_, errs[w] = c.Append(ctx, []dcb.Event{{Type: "W", Data: data}}, nil)
		})
	}
	wg.Wait()
	for w, err := range errs {
		assert.NoError(t, err, "writer %d", w)
	}
	assert.Equal(t, uint64(writers), s.st.Head())
}
