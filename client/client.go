// Package client is the Go client of a store served by package server (an
// embedding program, or `possum serve`): Append, Read, Subscribe and Head
// with the semantics of the same methods of store.Store, over HTTP on the
// store's unix socket or on TCP. A *Client satisfies store.Events, and its
// Append has the signature of Store.Append, so code written against them
// runs embedded or remote.
//
// Errors wrap the sentinels of store and dcb exactly as embedded
// (dcb.ErrAppendConditionFailed, dcb.ErrInvalidEvent, dcb.ErrInvalidQuery,
// store.ErrClosed, store.ErrCorrupt, store.ErrPoisoned): branch on them
// with errors.Is. Other errors are the network's: the server cannot be
// reached, went away, or a stream fell silent (ErrSilent).
//
// What a network changes:
//   - An Append whose answer is lost (the connection broke, the server was
//     killed) may or may not have been written: read before retrying, or
//     retry under the same append condition, which fails if it was.
//   - A Read is a snapshot taken when its loop starts (the request is sent
//     then), not when Read is called.
//   - A Subscribe ends with an error when the connection breaks, when its
//     consumer stalls long enough for the connection's buffers to fill and
//     the server to give up on it (30 s by default), or when the server,
//     short of memory for its streams, ends the slowest reader (code
//     slow_reader); resume with a new Subscribe after the last position it
//     delivered.
//   - HeadContext and Stats ask the server: they can fail, and ctx bounds
//     them. Every call that can block honours its context; a context
//     without a deadline gets Options.Timeout on the calls that wait for
//     one answer (Dial, Append, HeadContext, Stats), never on the streams
//     of Read and Subscribe, which heartbeats keep alive.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// ErrSilent: a stream sent nothing, not even a heartbeat, for three
// heartbeat intervals; the connection is taken for dead.
var ErrSilent = errors.New("client: the server fell silent (no line for three heartbeat intervals)")

var _ store.EventStore = (*Client)(nil)

// Defaults of Options.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultHeartbeat = 10 * time.Second
	DefaultMaxConns  = 256
)

// Options configure a Client. A nil *Options means the defaults.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" when set.
	Token string
	// Timeout bounds a Dial, Append, HeadContext or Stats whose context
	// has no deadline; a context with one is bounded by it alone.
	// 0: DefaultTimeout.
	Timeout time.Duration
	// Heartbeat is the interval at which streams (Read, Subscribe) ask the
	// server for a line when idle; a stream silent for three intervals
	// fails with ErrSilent. 0: DefaultHeartbeat.
	Heartbeat time.Duration
	// TLSConfig configures the TLS of an https:// URL: a RootCAs pool
	// holding the server's certificate authority (or its self-signed
	// certificate), when the system's roots do not vouch for it. nil: the
	// system's roots.
	TLSConfig *tls.Config
	// MaxConns bounds the idle connections kept for reuse (concurrent
	// callers beyond it open new ones). 0: DefaultMaxConns.
	MaxConns int
}

// Validate reports what is wrong with o, nil when nothing is: Dial refuses
// options that are not valid. Zero is each field's default; a negative
// duration or count, or a token that cannot travel in a header, is an
// error naming the field.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("client: Options.Timeout is negative (%v): 0 means the default %v", o.Timeout, DefaultTimeout)
	case o.Heartbeat < 0:
		return fmt.Errorf("client: Options.Heartbeat is negative (%v): 0 means the default %v", o.Heartbeat, DefaultHeartbeat)
	case o.MaxConns < 0:
		return fmt.Errorf("client: Options.MaxConns is negative (%d): 0 means the default %d", o.MaxConns, DefaultMaxConns)
	case strings.ContainsFunc(o.Token, func(r rune) bool { return r < 0x20 || r > 0x7e }) || o.Token != strings.TrimSpace(o.Token):
		return errors.New("client: Options.Token holds a byte a header cannot carry (a control character or a space at an end)")
	}
	return nil
}

// A Client talks to one served store. Its methods are safe for concurrent
// use; share one Client (it keeps connections alive for reuse).
type Client struct {
	base  string // scheme and host; paths are appended
	hc    *http.Client
	tr    *http.Transport
	opts  Options
	token string
	// maxBody is the largest request body the server takes, as it said
	// (GET /head); 0 until it did.
	maxBody atomic.Int64

	// closing ends with Close: new calls then fail with store.ErrClosed,
	// and running reads and subscriptions end with it.
	closing  context.Context
	closeNow context.CancelFunc

	sendMu  sync.Mutex
	queue   []*pendingAppend // appends waiting for a request
	sending int              // goroutines sending requests
}

// Dial connects to the server of the store in dir, on its unix socket
// (dir/possum.sock), with the default options.
func Dial(dir string) (*Client, error) { return DialOptions(dir, nil) }

// DialURL connects to a server over TCP at url (http://host:port, or
// https://host:port for a server with TLS whose certificate the system's
// roots vouch for; Options.TLSConfig names others), with a bearer token
// ("" for none).
func DialURL(url, token string) (*Client, error) {
	return DialOptions(url, &Options{Token: token})
}

// DialOptions is DialContext with a context that has no deadline
// (Options.Timeout bounds it).
func DialOptions(target string, opts *Options) (*Client, error) {
	return DialContext(context.Background(), target, opts)
}

// DialContext connects to target, a store directory (whose unix socket is
// dialled) or an http:// or https:// URL, with opts. It checks that a
// server answers there, within ctx (and Options.Timeout when ctx has no
// deadline).
func DialContext(ctx context.Context, target string, opts *Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Client{}
	c.closing, c.closeNow = context.WithCancel(context.Background())
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Timeout == 0 {
		c.opts.Timeout = DefaultTimeout
	}
	if c.opts.Heartbeat == 0 {
		c.opts.Heartbeat = DefaultHeartbeat
	}
	if c.opts.MaxConns == 0 {
		c.opts.MaxConns = DefaultMaxConns
	}
	c.token = c.opts.Token
	c.tr = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        c.opts.MaxConns,
		MaxIdleConnsPerHost: c.opts.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if c.opts.TLSConfig != nil {
		c.tr.TLSClientConfig = c.opts.TLSConfig.Clone()
	}
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", target, err)
		}
		c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
		c.tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	} else {
		path := storedir.SocketPath(target)
		if err := storedir.CheckSocketPath(path); err != nil {
			return nil, err
		}
		c.base = "http://possum"
		c.tr.Proxy = nil
		c.tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	c.hc = &http.Client{Transport: c.tr}
	if _, err := c.getHead(ctx); err != nil {
		c.Close()
		if wire.RemoteCode(err) == wire.CodeUnauthorized {
			// A server answered: it refused the token.
			return nil, fmt.Errorf("client: the server at %s refused the bearer token (Options.Token): %w", target, err)
		}
		return nil, fmt.Errorf("client: no possum server at %s (serve the store: `possum serve DIR`): %w", target, err)
	}
	return c, nil
}

// Close closes the client, as Store.Close closes a store: later calls fail
// with an error wrapping store.ErrClosed, and so do the reads and
// subscriptions running. Appends already sent finish, with their outcome.
func (c *Client) Close() error {
	c.closeNow()
	c.tr.CloseIdleConnections()
	return nil
}

// closed returns the error of a call op on a closed client, nil while it
// is open.
func (c *Client) closed(op string) error {
	if c.closing.Err() != nil {
		return fmt.Errorf("client: %s: %w", op, store.ErrClosed)
	}
	return nil
}

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

// HeadContext asks the server for the store's last acknowledged position
// (store.Events). It fails when the server cannot answer within ctx (and
// Options.Timeout when ctx has no deadline), and with store.ErrClosed once
// the client is closed.
func (c *Client) HeadContext(ctx context.Context) (uint64, error) {
	res, err := c.getHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: head: %w", err)
	}
	return res.Head, nil
}

// MaxBodyBytes returns the largest request body the server takes
// (server.Options.MaxBodyBytes, 16 MiB by default), as it said when the
// client connected: an Append whose events take more as JSON fails with
// dcb.ErrInvalidEvent and writes nothing, so a program appending large
// batches sizes them below it. 0 when the server did not say.
func (c *Client) MaxBodyBytes() int64 { return c.maxBody.Load() }

// Stats asks the server for the store's positions: the Head, Projected,
// Checkpointed, Lag, MaxLag, LagBound, MaxDelay and ProjectionRate of
// store.Stats, the other fields zero. A
// server of a store that reports no projection answers the head alone:
// the error then wraps errors.ErrUnsupported.
func (c *Client) Stats(ctx context.Context) (store.Stats, error) {
	res, err := c.getHead(ctx)
	if err != nil {
		return store.Stats{}, fmt.Errorf("client: stats: %w", err)
	}
	if res.Projected == nil || res.Checkpointed == nil || res.Lag == nil || res.MaxLag == nil {
		return store.Stats{Head: res.Head}, fmt.Errorf("client: stats: the server reports no projection: %w", errors.ErrUnsupported)
	}
	st := store.Stats{Head: res.Head, Projected: *res.Projected, Checkpointed: *res.Checkpointed, Lag: *res.Lag, MaxLag: *res.MaxLag}
	if res.LagBound != nil && res.MaxDelayNs != nil && res.ProjectionRate != nil {
		st.LagBound, st.MaxDelay, st.ProjectionRate = *res.LagBound, time.Duration(*res.MaxDelayNs), *res.ProjectionRate
	}
	return st, nil
}

// getHead runs GET /head. Its errors say nothing of what asked: callers
// add that.
func (c *Client) getHead(ctx context.Context) (wire.HeadResponse, error) {
	var res wire.HeadResponse
	if c.closing.Err() != nil {
		return res, store.ErrClosed
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/head", nil)
	if err != nil {
		return res, err
	}
	if err := c.do(req, &res); err != nil {
		return res, err
	}
	if res.MaxBodyBytes > 0 {
		c.maxBody.Store(res.MaxBodyBytes)
	}
	return res, nil
}

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

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// do sends req and decodes a 200 answer into res; any other answer
// becomes the error it carries.
func (c *Client) do(req *http.Request, res any) error {
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return errorOf(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(res); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return nil
}

// closeBody reads what is left of a small answer (the end of a chunked
// stream, a newline) before closing it, so that its connection is kept
// for the next request rather than closed.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

// errorOf returns the error an answer other than 200 carries, wrapping the
// sentinel its code names.
func errorOf(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e wire.Error
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		return fmt.Errorf("server answered %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return e.Err()
}
