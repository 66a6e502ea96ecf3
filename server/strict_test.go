package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	dcbdecision "github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInvalidUTF8: a stray byte that is not UTF-8, in an event's strings
// or a query's, gets the sentinel the embedded store gives (encoding/json
// would store it as U+FFFD, and two different tags would become one), over
// HTTP and through the Go client, and nothing is written.
func TestInvalidUTF8(t *testing.T) {
	s := serve(t, nil)
	hc := s.rawHTTP()
	c := s.dial(t, nil)
	ctx := t.Context()

	// Two tags that differ in a byte encoding/json would replace alike.
	for _, tag := range []string{"a\xff", "a\xfe"} {
		_, embedded := s.st.Append(ctx, []dcb.Event{{Type: "T", Tags: []string{tag}}}, nil)
		require.ErrorIs(t, embedded, dcb.ErrInvalidEvent)
		resp, err := hc.Post("http://possum/append", "application/json", strings.NewReader(`{"events":[{"type":"T","tags":["`+tag+`"]}]}`))
		require.NoError(t, err)
		msg, code := errorBody(t, resp)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Equal(t, "invalid_event", code, msg)
		_, err = c.Append(ctx, []dcb.Event{{Type: "T", Tags: []string{tag}}}, nil)
		assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
	}
	assert.Zero(t, s.st.Head(), "nothing written")

	// In POST /appends, the append with the stray byte fails alone.
	resp, err := hc.Post("http://possum/appends", "application/json", strings.NewReader(
		`{"appends":[{"events":[{"type":"Good"}]},{"events":[{"type":"T","metadata":{"k":"`+"\xff"+`"}}]},{"events":[{"type":"Good"}]}]}`))
	require.NoError(t, err)
	var results struct {
		Results []map[string]any `json:"results"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&results))
	resp.Body.Close()
	require.Len(t, results.Results, 3)
	assert.Nil(t, results.Results[0]["code"])
	assert.Equal(t, "invalid_event", results.Results[1]["code"])
	assert.Contains(t, results.Results[1]["error"], "metadata")
	assert.Nil(t, results.Results[2]["code"])
	assert.Equal(t, uint64(2), s.st.Head(), "the two good appends")

	// Queries: the client checks before sending (encoding would change
	// the tag), as the store does.
	bad := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"a\xff"}}}}
	_, embedded := collect(s.st.Read(ctx, bad, store.ReadOptions{}))
	require.ErrorIs(t, embedded, dcb.ErrInvalidQuery)
	_, err = collect(c.Read(ctx, bad, store.ReadOptions{}))
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery, "read")
	_, err = collect(c.Subscribe(ctx, bad, 0))
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery, "subscribe")
	_, err = c.Append(ctx, []dcb.Event{{Type: "T"}}, &dcb.AppendCondition{FailIfEventsMatch: bad})
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery, "a condition")
	_, err = c.Append(ctx, []dcb.Event{{Type: "T"}}, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Types: []string{"\xc3"}}}}})
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery, "a condition's type")
	assert.Equal(t, uint64(2), s.st.Head(), "nothing written")
}

// TestLargeRequests: a query too large for a URL travels in a body (the
// client switches by itself), a limit takes 64 bits, and POST /read and
// POST /stream answer as their GET forms do.
func TestLargeRequests(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	ctx := t.Context()
	for i := range 10 {
		_, err := s.st.Append(ctx, []dcb.Event{{Type: "Seat", Tags: []string{fmt.Sprintf("seat:%d", i)}}}, nil)
		require.NoError(t, err)
	}

	// A decision of 60,000 projections: a query of 60,000 items, some
	// 1.5 MB of JSON, far over any URL.
	const n = 60_000
	var m dcbdecision.Model
	seats := make([]*dcbdecision.Projected[bool], n)
	for i := range n {
		seats[i] = dcbdecision.Add(&m, dcbdecision.Projection[bool]{
			Query: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{fmt.Sprintf("seat:%d", i)}}}},
			Fold:  func(bool, dcb.SequencedEvent) (bool, error) { return true, nil },
		})
	}
	cond, err := m.Build(ctx, c)
	require.NoError(t, err)
	assert.True(t, seats[9].State())
	assert.False(t, seats[10].State())
	assert.Equal(t, uint64(10), cond.After)
	pos, err := c.Append(ctx, []dcb.Event{{Type: "Seat", Tags: []string{"seat:59999"}}}, &cond)
	require.NoError(t, err, "the condition travels in the append's body")
	_, err = c.Append(ctx, []dcb.Event{{Type: "Seat", Tags: []string{"seat:59999"}}}, &cond)
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	for e, err := range c.Subscribe(ctx, m.Query(), 10) {
		require.NoError(t, err)
		assert.Equal(t, pos, e.Position, "a subscription with a large query")
		break
	}

	// A limit beyond 32 bits.
	got, err := collect(c.Read(ctx, dcb.All(), store.ReadOptions{Limit: 1 << 40}))
	require.NoError(t, err)
	assert.Len(t, got, 11)
	hc := s.rawHTTP()
	resp, err := hc.Get("http://possum/read?limit=1099511627776&backwards=true")
	require.NoError(t, err)
	var events []dcb.SequencedEvent
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&events))
	resp.Body.Close()
	assert.Len(t, events, 11)

	// POST /read and POST /stream answer as GET does.
	q := `{"items":[{"tags":["seat:3"]},{"types":["Seat"],"tags":["seat:59999"]}]}`
	get, err := hc.Get("http://possum/read?query=" + url.QueryEscape(q) + "&options=" + url.QueryEscape(`{"backwards":true}`))
	require.NoError(t, err)
	var viaGet, viaPost []json.RawMessage
	require.NoError(t, json.NewDecoder(get.Body).Decode(&viaGet))
	get.Body.Close()
	post, err := hc.Post("http://possum/read", "application/json", strings.NewReader(`{"query":`+q+`,"options":{"backwards":true}}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, post.StatusCode)
	require.NoError(t, json.NewDecoder(post.Body).Decode(&viaPost))
	post.Body.Close()
	require.Len(t, viaGet, 2)
	assert.Equal(t, viaGet, viaPost)

	stream, err := hc.Post("http://possum/stream", "application/json", strings.NewReader(`{"query":`+q+`,"follow":true,"after":4}`))
	require.NoError(t, err)
	defer stream.Body.Close()
	line, err := bufio.NewReader(stream.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, line, fmt.Sprintf(`"position":%d`, pos))
}
