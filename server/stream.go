package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// streamFlushBytes is how much a stream gathers before it writes when more
// events are ready at once (a catch-up); a live stream writes each event as
// it comes.
const streamFlushBytes = 32 << 10

// stream answers GET and POST /stream: NDJSON, one event per line. Without follow,
// the events of a read (the options of GET /read), then {"end":true}. With
// follow=true, those after position after (or from-1), then each new one
// as it is acknowledged, with a heartbeat line when idle, until the client
// goes away, the server stops or the store closes; an error ends a stream
// with an error line ({"error":...,"code":...}).
func (srv *Server) stream(w http.ResponseWriter, r *http.Request) {
	req, ok := srv.parseReadRequest(w, r, true)
	if !ok {
		return
	}
	q, o, follow, after := req.q, req.o, req.follow, req.after
	heartbeat := srv.opts.Heartbeat
	if req.heartbeat != 0 {
		heartbeat = req.heartbeat
	}

	srv.streams.Add(1)
	defer srv.streams.Add(-1)
	s := &streamWriter{w: w, rc: http.NewResponseController(w), timeout: srv.opts.StreamWriteTimeout}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if !follow {
		srv.streamRead(r.Context(), s, q, o)
		return
	}
	w.WriteHeader(http.StatusOK)
	if s.flush() != nil {
		return
	}
	srv.streamFollow(r.Context(), s, q, after, heartbeat)
}

// streamRead sends the events of a read, then the end line.
func (srv *Server) streamRead(ctx context.Context, s *streamWriter, q dcb.Query, o store.ReadOptions) {
	for e, err := range srv.st.Read(ctx, q, o) {
		if err != nil {
			s.errorLine(ctx, err)
			_ = s.flush()
			return
		}
		s.event(e)
		if len(s.buf) >= streamFlushBytes && s.flush() != nil {
			return
		}
	}
	s.buf = append(s.buf, "{\"end\":true}\n"...)
	_ = s.flush()
}

// streamFollow sends the events of a subscription as they come, and a
// heartbeat line whenever the stream was idle for heartbeat.
//
// The subscription runs in a goroutine of its own, which encodes each
// event as its line and queues it, so that this one can send heartbeats
// while it waits. The queue is bounded in bytes (Options.StreamBufferBytes),
// and all streams' queues together (Options.StreamsBufferBytes): a client
// that reads slowly slows its own subscription, which the store answers
// from its log, so nothing piles up in memory (see lineQueue.put).
func (srv *Server) streamFollow(ctx context.Context, s *streamWriter, q dcb.Query, after uint64, heartbeat time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	lines := srv.pool.newQueue(srv.opts.StreamBufferBytes)
	subscribed := make(chan struct{})
	go func() {
		defer close(subscribed)
		for e, err := range srv.st.Subscribe(ctx, q, after) {
			if err != nil {
				lines.finish(err)
				return
			}
			line := storedir.AppendEvent(nil, e, true)
			if !lines.put(ctx, append(line, '\n')) {
				return
			}
		}
	}()
	defer func() {
		lines.close()
		cancel()
		<-subscribed
	}()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-lines.ready:
			var end error
			for {
				var line []byte
				if line, end = lines.take(); line == nil {
					break
				}
				if s.write(line) != nil {
					return
				}
				lines.written(line)
			}
			if end != nil {
				s.errorLine(ctx, end)
			}
			if s.flush() != nil || end != nil {
				return
			}
			tick.Reset(heartbeat)
		case <-tick.C:
			s.buf = append(s.buf, "{\"heartbeat\":true}\n"...)
			if s.flush() != nil {
				return
			}
		case <-ctx.Done():
			// The client went away (nothing more to send) or the
			// server is stopping (say so).
			s.errorLine(ctx, ctx.Err())
			_ = s.flush()
			return
		}
	}
}

// streamWriter gathers the lines of a stream and writes them, each write
// bounded by a deadline so that a stalled client ends its stream.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (s *streamWriter) event(e dcb.SequencedEvent) {
	s.buf = storedir.AppendEvent(s.buf, e, true)
	s.buf = append(s.buf, '\n')
}

// errorLine adds the error line that ends a stream.
func (s *streamWriter) errorLine(ctx context.Context, err error) {
	code := wire.Code(err)
	msg := err.Error()
	if errors.Is(err, errSlowReader) {
		code = wire.CodeSlowReader
	}
	if code == wire.CodeInternal && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		code, msg = wire.CodeUnavailable, "server: the stream was stopped (the server is stopping): "+msg
	}
	s.buf = append(s.buf, `{"error":`...)
	s.buf = storedir.AppendString(s.buf, msg)
	s.buf = append(s.buf, `,"code":`...)
	s.buf = storedir.AppendString(s.buf, code)
	s.buf = append(s.buf, "}\n"...)
}

// write writes line, which the caller holds, as it is, within the
// deadline.
func (s *streamWriter) write(line []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(line)
	return err
}

func (s *streamWriter) flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if len(s.buf) > 0 {
		if _, err := s.w.Write(s.buf); err != nil {
			return err
		}
		s.buf = s.buf[:0]
	}
	return s.rc.Flush()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
