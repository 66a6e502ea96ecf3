package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stalledConn opens a connection to the served store's socket with a
// small receive buffer, sends request and never reads: the server's
// writes to it block once the socket's buffers are full.
func stalledConn(t *testing.T, s *served, request string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", storedir.SocketPath(s.dir))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.(*net.UnixConn).SetReadBuffer(4<<10))
	_, err = io.WriteString(conn, request)
	require.NoError(t, err)
	return conn
}

// TestStreamMemoryBounded: following streams whose clients never read
// hold no more than the server's bounds: each stream's queue in bytes,
// and all queues together; the slowest readers are ended with a slow_reader
// error line, while a client that reads gets every event.
func TestStreamMemoryBounded(t *testing.T) {
	const (
		perStream = 1 << 20
		all       = 1 << 20
		events    = 40
		stalled   = 6
	)
	// No write deadline ends a stalled stream here: only the bounds do.
	s := serve(t, &server.Options{StreamBufferBytes: perStream, StreamsBufferBytes: all, StreamWriteTimeout: time.Hour})
	ctx := t.Context()
	big := dcb.Event{Type: "Big", Data: json.RawMessage(`"` + strings.Repeat("x", 256<<10) + `"`)}
	for range events {
		_, err := s.st.Append(ctx, []dcb.Event{big}, nil)
		require.NoError(t, err)
	}
	conns := make([]net.Conn, stalled)
	for i := range conns {
		conns[i] = stalledConn(t, s, "GET /stream?follow=true HTTP/1.1\r\nHost: possum\r\n\r\n")
	}
	// Six queues of up to 768 KiB (besides the line each is writing)
	// cannot all fit in 1 MiB: the streams that stalled first give way,
	// until one is left, its queue full. The reading client starts only
	// then, so that the one it competes with has stalled longer than it,
	// however slowly a loaded machine runs it.
	require.Eventually(t, func() bool { _, _, slow := s.srv.StreamBytes(); return slow == stalled-1 }, testWait, pollEvery)

	// A client that reads gets every event meanwhile.
	c := s.dial(t, nil)
	got := 0
	for e, err := range c.Subscribe(ctx, dcb.All(), 0) {
		require.NoError(t, err)
		got++
		require.Equal(t, uint64(got), e.Position)
		if got == events {
			break
		}
	}
	_, peak, slow := s.srv.StreamBytes()
	assert.LessOrEqual(t, peak, int64(all), "the streams' queues together")
	assert.Greater(t, peak, int64(all)/2, "the bound was reached: the test tests it")
	t.Logf("peak %d bytes queued, %d slow readers ended", peak, slow)

	// The streams ended say why, to a client that reads on.
	var ended atomic.Int64
	for _, conn := range conns {
		go func() {
			resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1<<20), nil)
			if err != nil {
				return
			}
			var last string
			br := bufio.NewReaderSize(resp.Body, 1<<20)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					break // the end of a stream ended, or the test's end
				}
				last = line
			}
			if strings.Contains(last, `"code":"slow_reader"`) {
				ended.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return ended.Load() == slow }, testWait, pollEvery,
		"each stream ended as a slow reader ends with its error line")
}

// TestReadWriteDeadline: a read whose client takes nothing ends after the
// write timeout rather than holding its connection and its events.
func TestReadWriteDeadline(t *testing.T) {
	s := serve(t, &server.Options{StreamWriteTimeout: 300 * time.Millisecond})
	ctx := t.Context()
	big := dcb.Event{Type: "Big", Data: json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)}
	for range 100 {
		_, err := s.st.Append(ctx, []dcb.Event{big}, nil)
		require.NoError(t, err)
	}
	stalledConn(t, s, "GET /read HTTP/1.1\r\nHost: possum\r\n\r\n")
	require.Eventually(t, func() bool { return s.srv.Reads() == 1 }, testWait, pollEvery)
	require.Eventually(t, func() bool { return s.srv.Reads() == 0 }, testWait, pollEvery,
		"the read ends although its client holds the connection and reads nothing")
}
