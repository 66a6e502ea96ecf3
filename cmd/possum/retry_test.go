package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answerGate forwards TCP connections to a server, and its answers to the
// client only while open: closed, it drops them, as a network that loses
// them would. When the server's side ends, so does the client's.
type answerGate struct {
	l    net.Listener
	open atomic.Bool
	wg   sync.WaitGroup
}

func newAnswerGate(t *testing.T, server string) *answerGate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &answerGate{l: l}
	g.open.Store(true)
	g.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", server)
			if err != nil {
				c.Close()
				continue
			}
			g.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			g.wg.Go(func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && g.open.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			})
		}
	})
	t.Cleanup(func() { l.Close(); g.wg.Wait() })
	return g
}

// TestRetryAfterLostAnswer: an append written by `possum serve` whose
// answer never reached its client (the answer lost, then the server killed
// with SIGKILL) is sent again, with the same event ids, to the restarted
// server: it is answered with the positions it has, and the store holds
// one copy.
func TestRetryAfterLostAnswer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	srv, line := startServe(t, dir, "--listen", "127.0.0.1:0")
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	require.NotNil(t, addr, line)
	gate := newAnswerGate(t, addr[1])
	c, err := client.DialURL("http://"+gate.l.Addr().String(), "")
	require.NoError(t, err)
	defer c.Close()
	seed, err := c.Append(t.Context(), []dcb.Event{{Type: "Seed"}}, nil)
	require.NoError(t, err)

	batch := make([]dcb.Event, 3)
	for i := range batch {
		batch[i] = dcb.Event{Type: "Paid", Tags: []string{"order:7"}, ID: fmt.Sprintf("order-7-pay-%d", i)}
	}
	gate.open.Store(false) // the answer will be lost
	lost := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := c.Append(ctx, batch, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"order:7"}}}}, After: seed})
		lost <- err
	}()
	// The append is durable (a follower sees what the WAL acknowledged)...
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	want := seed + uint64(len(batch))
	require.Eventually(t, func() bool {
		h, err := f.HeadContext(t.Context())
		return err == nil && h >= want
	}, time.Minute, time.Millisecond)
	// ...and its server dies before the client hears of it.
	require.NoError(t, srv.Process.Kill())
	_ = srv.Wait()
	require.Error(t, <-lost, "the client never had the answer")

	startServe(t, dir)
	c2, err := client.Dial(dir)
	require.NoError(t, err)
	defer c2.Close()
	last, err := c2.Append(t.Context(), batch, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"order:7"}}}}, After: seed})
	require.NoError(t, err, "the retry, under the same condition, which its own events would fail")
	assert.Equal(t, want, last, "answered with the positions the first try got")
	head, err := c2.HeadContext(t.Context())
	require.NoError(t, err)
	assert.Equal(t, want, head, "one copy")
	evs, err := collectEvents(c2.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	ids := map[string]int{}
	for _, e := range evs {
		ids[e.ID]++
	}
	for _, e := range batch {
		assert.Equal(t, 1, ids[e.ID], "id %s", e.ID)
	}
}
