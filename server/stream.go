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
func (srv *Server) streamFollow(ctx context.Context, s *streamWriter, q dcb.Query, after uint64, heartbeat time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	type item struct {
		e   dcb.SequencedEvent
		err error
	}
	// The subscription runs in a goroutine of its own so that this one can
	// send heartbeats while it waits; a client that reads slowly fills
	// the channel and slows only its own subscription.
	ch := make(chan item, 256)
	go func() {
		defer close(ch)
		for e, err := range srv.st.Subscribe(ctx, q, after) {
			select {
			case ch <- item{e, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range ch { // wait for the subscription to end
		}
	}()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	// add adds the line of it; false: the stream ends.
	add := func(it item) bool {
		if it.err != nil {
			s.errorLine(ctx, it.err)
			return false
		}
		s.event(it.e)
		return true
	}
	for {
		select {
		case it, ok := <-ch:
			if !ok {
				return
			}
			more := add(it)
		gather:
			for more && len(s.buf) < streamFlushBytes {
				select {
				case it, ok := <-ch:
					more = ok && add(it)
				default:
					break gather
				}
			}
			if s.flush() != nil || !more {
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
	s.buf = wire.AppendEvent(s.buf, e, true)
	s.buf = append(s.buf, '\n')
}

// errorLine adds the error line that ends a stream.
func (s *streamWriter) errorLine(ctx context.Context, err error) {
	code := wire.Code(err)
	msg := err.Error()
	if code == wire.CodeInternal && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		code, msg = wire.CodeUnavailable, "server: the stream was stopped (the server is stopping): "+msg
	}
	s.buf = append(s.buf, `{"error":`...)
	s.buf = wire.AppendString(s.buf, msg)
	s.buf = append(s.buf, `,"code":`...)
	s.buf = wire.AppendString(s.buf, code)
	s.buf = append(s.buf, "}\n"...)
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
