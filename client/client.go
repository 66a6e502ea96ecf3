// Package client is the Go client of a store served by package server (an
// embedding program, or `possum serve`): Append, Read, Subscribe and Head
// with the semantics of the same methods of store.Store, over HTTP on the
// store's unix socket or on TCP. A *Client satisfies store.Events, and its
// Append has the signature of Store.Append, so code written against them
// runs embedded or remote.
//
// Errors wrap the sentinels of store and dcb exactly as embedded
// (dcb.ErrAppendConditionFailed, dcb.ErrIDConflict, dcb.ErrInvalidEvent,
// dcb.ErrInvalidQuery, store.ErrClosed, store.ErrCorrupt,
// store.ErrPoisoned): branch on them
// with errors.Is. Other errors are the network's: the server cannot be
// reached, went away, or a stream fell silent (ErrSilent).
//
// What a network changes:
//   - An Append whose answer is lost (the connection broke, the server was
//     killed) may or may not have been written. Give its events IDs
//     (dcb.Event.ID) and send it again: written already, it is answered with
//     its positions and nothing is written twice. Without IDs, read before
//     retrying, or retry under the same append condition, which fails if it
//     was written.
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
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
