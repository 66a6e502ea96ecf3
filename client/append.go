package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
)

// Append appends events as one atomic unit under cond and returns the last
// position once the store acknowledged it, as store.Store.Append does. A
// failed condition returns an error wrapping dcb.ErrAppendConditionFailed;
// invalid input one wrapping dcb.ErrInvalidEvent or dcb.ErrInvalidQuery;
// nothing was written then. A ctx without a deadline gets Options.Timeout;
// a ctx that ends before the append is sent cancels it (nothing written),
// one that ends later leaves its outcome unknown.
//
// Appends of concurrent callers travel together: while requests are in
// flight, the appends that wait are sent in one request (POST /appends),
// each with its own condition and result, and the server appends them
// concurrently, as it would for as many connections.
func (c *Client) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if err := c.closed("append"); err != nil {
		return 0, err
	}
	// Checked here as the store checks them: the same sentinels, and
	// nothing sent that encoding would change (Data goes as it is: it must
	// be JSON for the body to be; a stray byte in a string would become
	// U+FFFD).
	if err := dcb.ValidateBatch(events); err != nil {
		return 0, fmt.Errorf("client: append: %w", err)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return 0, fmt.Errorf("client: append: condition: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	deadline, _ := ctx.Deadline()
	p := &pendingAppend{body: wire.AppendRequestBody(nil, events, cond), deadline: deadline, done: make(chan appendResult, 1)}
	c.sendMu.Lock()
	c.queue = append(c.queue, p)
	lead := c.sending < maxSending
	if lead {
		c.sending++
	}
	c.sendMu.Unlock()
	if lead {
		go c.send()
	}
	select {
	case r := <-p.done:
		if r.err != nil {
			return 0, fmt.Errorf("client: append: %w", r.err)
		}
		if r.res.AppendConditionFailed {
			return 0, fmt.Errorf("client: append: %w", dcb.ErrAppendConditionFailed)
		}
		return r.res.Position, nil
	case <-ctx.Done():
		if p.state.CompareAndSwap(queued, cancelled) {
			return 0, ctx.Err() // never sent: nothing written
		}
		return 0, fmt.Errorf("client: append: %w (sent: it may have been written)", ctx.Err())
	}
}

// The states of a pendingAppend.
const (
	queued    int32 = iota
	taken           // by a request
	cancelled       // by its caller, before it was taken
)

// pendingAppend is an Append waiting for its request.
type pendingAppend struct {
	body     []byte    // its AppendRequest
	deadline time.Time // its caller's (or Options.Timeout)
	state    atomic.Int32
	done     chan appendResult // capacity 1
}

type appendResult struct {
	res wire.AppendResponse
	err error
}

const (
	// maxSending bounds the append requests in flight: the others wait
	// and go together in the next one.
	maxSending = 4
	// maxTogether bounds the appends of one request, and
	// maxTogetherBytes its body (the server takes 16 MiB by default;
	// less when it says so).
	maxTogether      = 512
	maxTogetherBytes = 8 << 20
)

// send sends the waiting appends, as many together as fit a request,
// until none waits.
func (c *Client) send() {
	for {
		// Let the callers just answered (by the request this goroutine
		// sent) or about to queue (the one that started it) run first: a
		// caller that appends again at once then goes in this request,
		// not alone, and does not wait behind maxSending requests for a
		// later one. With no one else to run, it returns at once.
		runtime.Gosched()
		c.sendMu.Lock()
		var batch []*pendingAppend
		size, n := 0, 0
		limit := maxTogetherBytes
		if mb := int(c.maxBody.Load()); mb > 0 {
			// Appends that fit alone must fit together.
			limit = min(limit, mb-len(`{"appends":[]}`))
		}
		for _, p := range c.queue {
			if n > 0 && (n == maxTogether || size+len(p.body)+1 > limit) {
				break
			}
			n++
			if p.state.CompareAndSwap(queued, taken) {
				batch = append(batch, p)
				size += len(p.body) + 1 // and a comma
			}
		}
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		if n == 0 {
			c.sending--
			c.sendMu.Unlock()
			return
		}
		c.sendMu.Unlock()
		if len(batch) > 0 {
			c.sendBatch(batch)
		}
	}
}

// sendBatch sends one request for batch and answers each of its callers.
// The request lives as long as the latest deadline among them: a caller
// whose context ends sooner stops waiting for it (Append's select), the
// others still get their outcome.
func (c *Client) sendBatch(batch []*pendingAppend) {
	deadline := batch[0].deadline
	for _, p := range batch[1:] {
		if p.deadline.After(deadline) {
			deadline = p.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(batch) == 1 {
		var res wire.AppendResponse
		err := c.post(ctx, "/append", batch[0].body, &res)
		batch[0].done <- appendResult{res, err}
		return
	}
	body := append(make([]byte, 0, 16+len(batch)*(len(batch[0].body)+1)), `{"appends":[`...)
	for i, p := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, p.body...)
	}
	body = append(body, "]}"...)
	var res wire.AppendsResponse
	err := c.post(ctx, "/appends", body, &res)
	if err == nil && len(res.Results) != len(batch) {
		err = fmt.Errorf("the server answered %d results for %d appends", len(res.Results), len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.done <- appendResult{err: err}
			continue
		}
		r := res.Results[i]
		if r.Error != nil {
			p.done <- appendResult{err: r.Error.Err()}
			continue
		}
		p.done <- appendResult{res: r.AppendResponse}
	}
}

// post sends body to path and decodes the answer into res.
func (c *Client) post(ctx context.Context, path string, body []byte, res any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, res)
}
