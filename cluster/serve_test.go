package cluster

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNodeServedAndDecided: server.New serves a node over HTTP as it
// serves a store, and the decision models run on a node unchanged: a
// unique username taken through one node's HTTP API is refused through
// another node's decision.
func TestNodeServedAndDecided(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	a := openNode(t, url, stream, t.TempDir(), 0)
	b := openNode(t, url, stream, t.TempDir(), 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := server.New(a, nil)
	go func() { _ = srv.Serve(ctx, l) }()
	c, err := client.DialURL("http://"+l.Addr().String(), "")
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	register := func(s store.EventStore, user string) error {
		return decision.Retry(t.Context(), nil, func(ctx context.Context) error {
			var m decision.Model
			taken := decision.Add(&m, decision.Projection[bool]{
				Query: tagQuery("username:" + user),
				Fold:  func(bool, dcb.SequencedEvent) (bool, error) { return true, nil },
			})
			cond, err := m.Build(ctx, s)
			if err != nil {
				return err
			}
			if taken.State() {
				return errTaken
			}
			_, err = s.Append(ctx, []dcb.Event{{Type: "Registered", Tags: []string{"username:" + user}}}, &cond)
			return err
		})
	}
	require.NoError(t, register(c, "ann"), "through node a's HTTP API")
	_, err = b.CatchUp(t.Context())
	require.NoError(t, err)
	assert.ErrorIs(t, register(b, "ann"), errTaken, "node b sees it and refuses")
	require.NoError(t, register(b, "bob"))

	// Node a learns of bob's registration through the stream; its HTTP
	// API then serves both.
	_, err = a.CatchUp(t.Context())
	require.NoError(t, err)
	head, err := c.HeadContext(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), head)
	assert.Len(t, readAll(t, c), 2)
}

var errTaken = errors.New("username taken")

// TestNodeListensOnItsSocket: a node serves on the unix socket in its
// directory, where client.Dial (and so possum append DIR) finds it: an
// append through it goes to the stream.
func TestNodeListensOnItsSocket(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	n := openNode(t, url, stream, t.TempDir(), 0)
	l, err := n.ListenSocket()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = server.New(n, nil).Serve(ctx, l) }()
	c, err := client.Dial(n.Dir())
	require.NoError(t, err)
	defer c.Close()
	last, err := c.Append(t.Context(), []dcb.Event{{Type: "ThroughTheSocket", ID: "s-1"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), last)
	got := streamEvents(t, url, stream)
	require.Len(t, got, 1)
	assert.Equal(t, "s-1", got[0].ID)
}
