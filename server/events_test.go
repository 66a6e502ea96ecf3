package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIDsAndTimestampsOverHTTP: an event's id and its caller's timestamp
// travel through the client and the HTTP API, both ways, as embedded; a
// retry through the client is answered with the held positions and writes
// nothing; an id held with other content is id_conflict (409, wrapping
// dcb.ErrIDConflict); an explicit zero timestamp is refused.
func TestIDsAndTimestampsOverHTTP(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	own := time.Date(2001, 2, 3, 4, 5, 6, 789, time.FixedZone("Y", 3600))
	batch := []dcb.Event{
		{Type: "Paid", ID: "pay-1", Timestamp: own, Data: json.RawMessage(`{"eur":5}`)},
		{Type: "Shipped", ID: "ship-1"},
	}
	last, err := c.Append(t.Context(), batch, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), last)
	want := readAllEmbedded(t, s.st)
	assert.Equal(t, own.UTC(), want[0].Timestamp)
	assert.Equal(t, "ship-1", want[1].ID)

	got, err := collect(c.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	assert.Equal(t, want, got, "read through the client: ids and timestamps as embedded")
	var sub []dcb.SequencedEvent
	for e, err := range c.Subscribe(t.Context(), dcb.All(), 0) {
		require.NoError(t, err)
		if sub = append(sub, e); len(sub) == 2 {
			break
		}
	}
	assert.Equal(t, want, sub, "subscribed through the client")

	resp, err := s.rawHTTP().Get("http://possum/read")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `"timestamp":"2001-02-03T03:05:06.000000789Z","id":"pay-1"`)

	again, err := c.Append(t.Context(), batch, nil)
	require.NoError(t, err, "a retry")
	assert.Equal(t, last, again)
	assert.Equal(t, last, s.st.Head(), "nothing written")

	other := []dcb.Event{{Type: "Paid", ID: "pay-1", Data: json.RawMessage(`{"eur":6}`)}}
	_, err = c.Append(t.Context(), other, nil)
	assert.ErrorIs(t, err, dcb.ErrIDConflict, "through the client")
	resp, err = s.rawHTTP().Post("http://possum/append", "application/json",
		strings.NewReader(`{"events":[{"type":"Paid","id":"pay-1","data":{"eur":6}}]}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	_, code := errorBody(t, resp)
	resp.Body.Close()
	assert.Equal(t, "id_conflict", code)

	resp, err = s.rawHTTP().Post("http://possum/append", "application/json",
		strings.NewReader(`{"events":[{"type":"T","timestamp":"0001-01-01T00:00:00Z"}]}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	msg, code := errorBody(t, resp)
	resp.Body.Close()
	assert.Equal(t, "invalid_event", code)
	assert.Contains(t, msg, "zero time")
	assert.Equal(t, last, s.st.Head(), "nothing written")
}

func readAllEmbedded(t *testing.T, st *store.Store) []dcb.SequencedEvent {
	t.Helper()
	out, err := collect(st.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	return out
}

// TestClientStatsAndMessages: the client's Stats carries the store's lag
// bound, in events and in time, and the projector's rate; and a client
// error says "client:" once, also when it wraps the client's own.
func TestClientStatsAndMessages(t *testing.T) {
	s := serve(t, nil)
	c := s.dial(t, nil)
	_, err := s.st.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
	require.NoError(t, err)
	got, err := c.Stats(t.Context())
	require.NoError(t, err)
	want := s.st.Stats()
	assert.Equal(t, want.MaxDelay, got.MaxDelay)
	assert.Equal(t, want.MaxLag, got.MaxLag)
	assert.Positive(t, got.LagBound)

	_, err = client.Dial(t.TempDir())
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(err.Error(), "client:"), "%v", err)
	require.NoError(t, c.Close())
	_, err = c.HeadContext(t.Context())
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.Equal(t, 1, strings.Count(err.Error(), "client:"), "%v", err)
}
