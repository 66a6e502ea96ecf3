package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/store"
)

// Read returns the events matching q, as store.Store.Read does, streamed
// from the server. The snapshot is taken when the loop starts.
func (c *Client) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return func(yield func(dcb.SequencedEvent, error) bool) {
		// Checked here as the store checks them: the same sentinel, and
		// nothing sent that encoding would change (a stray byte).
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("client: read: %w", err))
			return
		}
		if _, _, err := o.Span(0); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("client: read: %w", err))
			return
		}
		req := wire.ReadRequest{Options: &wire.ReadOptions{From: o.From, Limit: o.Limit, Backwards: o.Backwards}}
		c.stream(ctx, "read", q, req, yield)
	}
}

// Subscribe yields the events matching q after position after, first
// those stored, then each new one as it is acknowledged, as
// store.Store.Subscribe does, until ctx ends (ctx.Err() last), the store
// closes (store.ErrClosed) or the connection breaks.
func (c *Client) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return func(yield func(dcb.SequencedEvent, error) bool) {
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("client: subscribe: %w", err))
			return
		}
		c.stream(ctx, "subscribe", q, wire.ReadRequest{Follow: true, After: &after}, yield)
	}
}

// maxURLBytes bounds the URL of a GET /stream; a request whose query makes
// it longer goes as POST /stream with the query in its body (servers and
// proxies refuse long URLs: Go's with 431 beyond 1 MiB of headers, many
// proxies beyond 8 KiB).
const maxURLBytes = 4 << 10

// streamRequest returns the request of a stream of q with the rest of req:
// GET /stream with parameters, or POST /stream with req as its body when
// the URL would be long.
func (c *Client) streamRequest(ctx context.Context, q dcb.Query, req wire.ReadRequest) (*http.Request, error) {
	req.Heartbeat = uint64(c.opts.Heartbeat.Milliseconds())
	v := url.Values{}
	if !q.IsAll() {
		wq := wire.FromQuery(q)
		req.Query = &wq
		b, err := json.Marshal(wq)
		if err != nil {
			return nil, err
		}
		v.Set("query", string(b))
	}
	if o := req.Options; o != nil {
		if o.From > 0 {
			v.Set("from", strconv.FormatUint(o.From, 10))
		}
		if o.Limit != 0 {
			v.Set("limit", strconv.Itoa(o.Limit))
		}
		if o.Backwards {
			v.Set("backwards", "true")
		}
	}
	if req.Follow {
		v.Set("follow", "true")
	}
	if req.After != nil {
		v.Set("after", strconv.FormatUint(*req.After, 10))
	}
	v.Set("heartbeat", strconv.FormatUint(req.Heartbeat, 10))
	if u := c.base + "/stream?" + v.Encode(); len(u) <= maxURLBytes {
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/stream", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	return r, nil
}

// stream runs a stream of q with the rest of r and yields its events.
// Every pair it yields after the first failure is the last.
func (c *Client) stream(parent context.Context, op string, q dcb.Query, r wire.ReadRequest, yield func(dcb.SequencedEvent, error) bool) {
	fail := func(err error) {
		switch perr := parent.Err(); {
		case perr != nil:
			err = perr // as embedded: a loop whose context ended ends with ctx.Err()
		case errors.Is(err, ErrSilent), errors.Is(err, store.ErrClosed):
			// They say what happened, and where, as they are.
		default:
			err = fmt.Errorf("client: %s: %w", op, err)
		}
		yield(dcb.SequencedEvent{}, err)
	}
	if err := c.closed(op); err != nil {
		yield(dcb.SequencedEvent{}, err)
		return
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// Close ends the stream with store.ErrClosed, as it ends a store's.
	defer context.AfterFunc(c.closing, func() { cancel(store.ErrClosed) })()
	// silence cancels the request when the server sent nothing for three
	// heartbeats; it is stopped while the caller handles an event.
	silence := time.AfterFunc(3*c.opts.Heartbeat, func() { cancel(ErrSilent) })
	defer silence.Stop()
	cause := func(err error) error {
		if c := context.Cause(ctx); errors.Is(c, ErrSilent) || errors.Is(c, store.ErrClosed) {
			return c
		}
		return err
	}
	req, err := c.streamRequest(ctx, q, r)
	if err != nil {
		fail(err)
		return
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		fail(cause(err))
		return
	}
	// A stream left early is closed, never drained: a subscription does
	// not end. Only a read that ended is drained, to reuse its connection.
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail(errorOf(resp))
		return
	}
	br := bufio.NewReader(resp.Body)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: the stream ended without its last line (the server went away?)", io.ErrUnexpectedEOF)
			}
			fail(cause(err))
			return
		}
		var l wire.Line
		if err := json.Unmarshal(line, &l); err != nil {
			fail(fmt.Errorf("a stream line that is not JSON: %w", err))
			return
		}
		switch {
		case l.Error != "":
			fail(wire.Error{Message: l.Error, Code: l.Code}.Err())
			return
		case l.End:
			_, _ = io.Copy(io.Discard, io.LimitReader(br, 4<<10)) // the end of the chunked body
			return
		case l.Heartbeat:
			silence.Reset(3 * c.opts.Heartbeat)
			continue
		}
		silence.Stop()
		e := l.Event()
		if !yield(e, nil) {
			return
		}
		silence.Reset(3 * c.opts.Heartbeat)
	}
}
