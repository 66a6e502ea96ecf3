package server_test

import (
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLostPositionsServed: GET /read and /stream carry a lost position as
// the marker's JSON ({"position":N,"lost":true}, type and tags when known),
// and the client yields it as a SequencedEvent with Lost set, as the
// embedded store does, for reads and subscriptions alike.
func TestLostPositionsServed(t *testing.T) {
	s := serve(t, nil)
	ctx := t.Context()
	_, err := s.st.Append(ctx, []dcb.Event{{Type: "A", Tags: []string{"t"}}}, nil)
	require.NoError(t, err)
	_, err = s.st.AppendLost(ctx, 1, []dcb.Event{{Type: "A", Tags: []string{"t"}}, {}}, "")
	require.NoError(t, err)

	hc := s.rawHTTP()
	get := func(path string) string {
		resp, err := hc.Get("http://possum" + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	read := get("/read?query=" + url.QueryEscape(`{"items":[{"tags":["t"]}]}`))
	assert.Contains(t, read, `,{"position":2,"lost":true,"type":"A","tags":["t"]},{"position":3,"lost":true}]`)
	stream := get("/stream?query=" + url.QueryEscape(`{"items":[{"types":["B"]}]}`))
	assert.Equal(t, "{\"position\":3,\"lost\":true}\n{\"end\":true}\n", stream, "an unknown marker is in every query's range")
	c := s.dial(t, nil)
	for _, q := range []dcb.Query{dcb.All(), {Items: []dcb.QueryItem{{Types: []string{"B"}}}}} {
		embedded, err := collect(s.st.Read(ctx, q, store.ReadOptions{}))
		require.NoError(t, err)
		remote, err := collect(c.Read(ctx, q, store.ReadOptions{}))
		require.NoError(t, err)
		assert.Equal(t, embedded, remote)
		assert.True(t, remote[len(remote)-1].Lost)
	}
	sub := c.Subscribe(ctx, dcb.All(), 1)
	var got []dcb.SequencedEvent
	for e, err := range sub {
		require.NoError(t, err)
		got = append(got, e)
		if len(got) == 2 {
			break
		}
	}
	assert.Equal(t, []dcb.SequencedEvent{{Event: dcb.Event{Type: "A", Tags: []string{"t"}}, Position: 2, Lost: true}, {Position: 3, Lost: true}}, got)
	assert.False(t, strings.Contains(read, `"timestamp":"0001`), "no made-up timestamp")
}
