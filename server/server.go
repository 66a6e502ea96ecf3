package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// Defaults of Options.
const (
	DefaultMaxBodyBytes       = 16 << 20
	DefaultBodyTimeout        = 30 * time.Second
	DefaultHeartbeat          = 10 * time.Second
	DefaultStreamWriteTimeout = 30 * time.Second
	DefaultStreamBufferBytes  = 1 << 20
	DefaultStreamsBufferBytes = 64 << 20
	// MinHeartbeat and MaxHeartbeat bound the heartbeat a stream may ask
	// for.
	MinHeartbeat = 50 * time.Millisecond
	MaxHeartbeat = time.Minute
)

// Options configure a Server. A nil *Options means the defaults.
type Options struct {
	// Token, when set, is required of every request as the header
	// "Authorization: Bearer <Token>"; others get 401. Serve it over TCP;
	// the unix socket needs none (its file mode admits only its owner).
	Token string
	// MaxBodyBytes bounds a request body; larger ones get 413 and write
	// nothing. 0: DefaultMaxBodyBytes (16 MiB).
	MaxBodyBytes int64
	// BodyTimeout bounds the time a request body may take to arrive once
	// its headers have; a slower one gets 408 and writes nothing.
	// 0: DefaultBodyTimeout.
	BodyTimeout time.Duration
	// Heartbeat is how often an idle stream sends a heartbeat line, unless
	// the request asks for another interval. 0: DefaultHeartbeat.
	Heartbeat time.Duration
	// StreamWriteTimeout ends a stream, or a read, whose client has not
	// taken what was written to it for this long (a stalled or vanished
	// client), so that it holds nothing for ever.
	// 0: DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// StreamBufferBytes bounds the event lines a following stream holds
	// that its client has not taken yet: while it holds that many, its
	// subscription waits, so a client that reads slowly slows only its
	// own subscription (which the store answers from its log, costing no
	// memory). A single longer line is held alone.
	// 0: DefaultStreamBufferBytes (1 MiB).
	StreamBufferBytes int64
	// StreamsBufferBytes bounds the lines all following streams have
	// queued together (besides the one line each is writing). When a new
	// line would pass it, the slowest reader (of the streams with lines
	// queued, the one whose client took a line the longest ago) is ended:
	// its queued lines are dropped, and after the line
	// it is writing comes an error line with code slow_reader (the client
	// subscribes again after the last event it received).
	// 0: DefaultStreamsBufferBytes (64 MiB).
	StreamsBufferBytes int64
	// TLSConfig, when set, makes Serve speak HTTPS with it (it needs
	// Certificates or GetCertificate). Serve it over TCP; the unix socket
	// needs none. nil: plain HTTP.
	TLSConfig *tls.Config
	// MaxConns bounds the connections the server holds open at once; one
	// more waits in the listener's queue, costing no file, until another
	// closes. 0: DefaultMaxConns().
	MaxConns int
	// Logger receives what the server logs (listening, stopping, failed
	// requests it cannot answer). nil: slog.Default().
	Logger *slog.Logger
}

// Validate reports what is wrong with o, nil when nothing is: Serve
// refuses to start with options that are not valid. Zero is each field's
// default; a negative limit or duration, or a token that cannot travel in
// a header, is an error naming the field.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxBodyBytes", o.MaxBodyBytes}, {"BodyTimeout", int64(o.BodyTimeout)}, {"Heartbeat", int64(o.Heartbeat)},
		{"StreamWriteTimeout", int64(o.StreamWriteTimeout)}, {"StreamBufferBytes", o.StreamBufferBytes},
		{"StreamsBufferBytes", o.StreamsBufferBytes}, {"MaxConns", int64(o.MaxConns)},
	} {
		if f.v < 0 {
			return fmt.Errorf("server: Options.%s is negative (%d): 0 means the default", f.name, f.v)
		}
	}
	if o.Heartbeat != 0 && (o.Heartbeat < MinHeartbeat || o.Heartbeat > MaxHeartbeat) {
		return fmt.Errorf("server: Options.Heartbeat %v: want %v to %v, or 0 for the default %v", o.Heartbeat, MinHeartbeat, MaxHeartbeat, DefaultHeartbeat)
	}
	if !validToken(o.Token) {
		return errors.New("server: Options.Token holds a byte a header cannot carry (a control character or a space at an end)")
	}
	if o.TLSConfig != nil && len(o.TLSConfig.Certificates) == 0 && o.TLSConfig.GetCertificate == nil {
		return errors.New("server: Options.TLSConfig has no certificate (Certificates or GetCertificate)")
	}
	return nil
}

// validToken reports whether a bearer token can travel in a header as it
// is: printable ASCII, no space at either end.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return false
		}
	}
	return t == strings.TrimSpace(t)
}

// A Server answers the HTTP API for one store. It is an http.Handler;
// Serve runs it on a listener. Its methods are safe for concurrent use.
type Server struct {
	st      store.EventStore
	opts    Options
	log     *slog.Logger
	streams atomic.Int64 // streams running
	reads   atomic.Int64 // reads running (GET and POST /read)
	pool    *streamPool  // the lines all following streams hold
	optsErr error        // Options.Validate's answer: Serve refuses to start
}

// New returns a server of st.
// Options that are not valid (Options.Validate) make Serve return their
// error at once.
func New(st store.EventStore, opts *Options) *Server {
	srv := &Server{st: st, optsErr: opts.Validate()}
	if opts != nil {
		srv.opts = *opts
	}
	o := &srv.opts
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if o.StreamBufferBytes <= 0 {
		o.StreamBufferBytes = DefaultStreamBufferBytes
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns()
	}
	if o.StreamsBufferBytes <= 0 {
		o.StreamsBufferBytes = DefaultStreamsBufferBytes
	}
	srv.pool = newStreamPool(o.StreamsBufferBytes)
	srv.log = o.Logger
	if srv.log == nil {
		srv.log = slog.Default()
	}
	return srv
}

// A route is one operation of the API.
type route struct {
	method, path string
	handle       func(*Server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{http.MethodGet, "/read", (*Server).read},
	{http.MethodPost, "/read", (*Server).read},
	{http.MethodPost, "/append", (*Server).append},
	{http.MethodPost, "/appends", (*Server).appends},
	{http.MethodGet, "/stream", (*Server).stream},
	{http.MethodPost, "/stream", (*Server).stream},
	{http.MethodGet, "/head", (*Server).head},
}

// ServeHTTP answers one request of the API.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if srv.opts.Token != "" && !srv.authorized(r) {
		// Closed after the answer: a connection without the token keeps
		// nothing of the server's.
		w.Header().Set("Connection", "close")
		w.Header().Set("WWW-Authenticate", `Bearer realm="possum"`)
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "server: missing or wrong bearer token (Authorization: Bearer <token>)")
		return
	}
	var allowed []string
	for _, rt := range routes {
		if rt.path != r.URL.Path {
			continue
		}
		if rt.method == r.Method {
			if r.URL.RawQuery != "" && !(r.Method == http.MethodGet && (rt.path == "/read" || rt.path == "/stream")) {
				// Only GET /read and GET /stream take parameters; one
				// elsewhere is a mistake to say, not to ignore.
				writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "server: "+r.Method+" "+r.URL.Path+" takes no parameters (got "+strconv.Quote(r.URL.RawQuery)+")")
				return
			}
			rt.handle(srv, w, r)
			return
		}
		allowed = append(allowed, rt.method)
	}
	if allowed != nil {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethod, "server: "+r.Method+" "+r.URL.Path+": use "+strings.Join(allowed, ", "))
		return
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound, "server: no operation at "+r.URL.Path+" (GET or POST /read, POST /append, POST /appends, GET or POST /stream, GET /head)")
}

// authorized reports whether r carries the token: "Authorization: Bearer
// <token>", the scheme in any case (RFC 9110, section 11.1).
func (srv *Server) authorized(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	got = strings.TrimLeft(got, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(got), []byte(srv.opts.Token)) == 1
}

// Serve answers requests on l, at most Options.MaxConns connections at
// once, until ctx ends, then stops and returns nil:
// it stops accepting, and the contexts of the requests running end, so
// streams end (with an error line saying the server stops) and appends the
// store has not yet taken up are cancelled (nothing written); it waits up
// to 5 seconds for those requests to answer, then closes the connections
// and l. Any other reason to stop (l failed) is returned as an error.
func (srv *Server) Serve(ctx context.Context, l net.Listener) error {
	if srv.optsErr != nil {
		_ = l.Close()
		return srv.optsErr
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(srv.log.Handler(), slog.LevelDebug),
	}
	served := make(chan struct{}) // hs.Serve returned
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(grace) != nil {
			_ = hs.Close()
		}
	}()
	var err error
	if srv.opts.TLSConfig != nil {
		hs.TLSConfig = srv.opts.TLSConfig.Clone()
		err = hs.ServeTLS(newLimitListener(l, srv.opts.MaxConns), "", "")
	} else {
		err = hs.Serve(newLimitListener(l, srv.opts.MaxConns))
	}
	close(served)
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	_ = hs.Close()
	return err
}

// statser is the optional part of a served store: the projection's positions, as
// *store.Store reports them.
type statser interface{ Stats() store.Stats }

// head answers GET /head: the head, the projection's positions when the
// store reports them, and the largest body the server takes.
func (srv *Server) head(w http.ResponseWriter, r *http.Request) {
	st, ok := srv.st.(statser)
	if !ok {
		head, err := srv.st.HeadContext(r.Context())
		if err != nil {
			srv.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.HeadResponse{Head: head, MaxBodyBytes: srv.opts.MaxBodyBytes})
		return
	}
	s := st.Stats()
	delay := int64(s.MaxDelay)
	writeJSON(w, http.StatusOK, wire.HeadResponse{Head: s.Head, Projected: &s.Projected, Checkpointed: &s.Checkpointed, Lag: &s.Lag, MaxLag: &s.MaxLag,
		LagBound: &s.LagBound, MaxDelayNs: &delay, ProjectionRate: &s.ProjectionRate, MaxBodyBytes: srv.opts.MaxBodyBytes})
}

// append answers POST /append.
func (srv *Server) append(w http.ResponseWriter, r *http.Request) {
	body, ok := srv.readJSONBody(w, r, "append", wire.CodeTooLarge)
	if !ok {
		return
	}
	if err := wire.CheckAppendUTF8(body); err != nil {
		srv.fail(w, r, utf8Error("append", err))
		return
	}
	var req wire.AppendRequest
	if !decode(w, "append", body, &req) {
		return
	}
	res, err := srv.appendOne(r.Context(), req)
	if err != nil {
		srv.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// maxAppends bounds the appends of one POST /appends.
const maxAppends = 1024

// appends answers POST /appends: several independent appends in one
// request, each with its own condition and its own result. They are
// appended as if by as many concurrent callers (no order is promised among
// them); a store with AppendMany (a *store.Store) takes them together, so
// that they share a write and an fsync. The Go client sends the appends of
// its concurrent callers this way.
func (srv *Server) appends(w http.ResponseWriter, r *http.Request) {
	body, ok := srv.readJSONBody(w, r, "appends", wire.CodeTooLarge)
	if !ok {
		return
	}
	// Each append is checked for UTF-8 on its own, before it is decoded:
	// one with a stray byte fails alone, as its own append would.
	var raw struct {
		Appends []json.RawMessage `json:"appends"`
	}
	if !decode(w, "appends", body, &raw) {
		return
	}
	if len(raw.Appends) > maxAppends {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "server: appends: "+itoa(int64(len(raw.Appends)))+" appends, over the limit of "+itoa(maxAppends)+" a request; nothing written")
		return
	}
	reqs := make([]wire.AppendRequest, len(raw.Appends))
	invalid := make([]error, len(raw.Appends))
	for i, a := range raw.Appends {
		if err := wire.CheckAppendUTF8(a); err != nil {
			invalid[i] = utf8Error("appends", err)
			continue
		}
		if !decode(w, "appends: append "+itoa(int64(i)), a, &reqs[i]) {
			return
		}
	}
	res := wire.AppendsResponse{Results: make([]wire.AppendResult, len(reqs))}
	set := func(i int, one wire.AppendResponse, err error) {
		res.Results[i].AppendResponse = one
		if err != nil {
			res.Results[i].Error = srv.errorOf(r, err)
		}
	}
	if m, ok := srv.st.(appendManyer); ok {
		items := make([]store.AppendItem, 0, len(reqs))
		at := make([]int, 0, len(reqs)) // the append of each item
		for i, a := range reqs {
			if invalid[i] != nil {
				set(i, wire.AppendResponse{}, invalid[i])
				continue
			}
			events, cond, err := fromWire(a)
			if err != nil {
				set(i, wire.AppendResponse{}, err)
				continue
			}
			items = append(items, store.AppendItem{Events: events, Condition: cond})
			at = append(at, i)
		}
		start := time.Now()
		out := m.AppendMany(r.Context(), items)
		took := time.Since(start)
		for j, o := range out {
			one, err := appendResponse(o.Last, o.Err, took)
			set(at[j], one, err)
		}
	} else {
		var wg sync.WaitGroup
		for i, a := range reqs {
			if invalid[i] != nil {
				set(i, wire.AppendResponse{}, invalid[i])
				continue
			}
			wg.Go(func() {
				one, err := srv.appendOne(r.Context(), a)
				set(i, one, err)
			})
		}
		wg.Wait()
	}
	writeJSON(w, http.StatusOK, res)
}

// appendManyer is a served store that takes several appends at once, as
// *store.Store does.
type appendManyer interface {
	AppendMany(ctx context.Context, items []store.AppendItem) []store.AppendOutcome
}

// appendOne appends what req asks. A failed condition is not an error.
func (srv *Server) appendOne(ctx context.Context, req wire.AppendRequest) (wire.AppendResponse, error) {
	events, cond, err := fromWire(req)
	if err != nil {
		return wire.AppendResponse{}, err
	}
	start := time.Now()
	last, err := srv.st.Append(ctx, events, cond)
	return appendResponse(last, err, time.Since(start))
}

// fromWire returns the events and condition of an append request.
func fromWire(req wire.AppendRequest) ([]dcb.Event, *dcb.AppendCondition, error) {
	events := make([]dcb.Event, len(req.Events))
	for i, e := range req.Events {
		var err error
		if events[i], err = e.Event(); err != nil {
			return nil, nil, fmt.Errorf("server: append: event %d: %w", i, err)
		}
	}
	var cond *dcb.AppendCondition
	if req.Condition != nil {
		if req.Condition.FailIfEventsMatch == nil {
			return nil, nil, fmt.Errorf("server: append: %w: a condition needs failIfEventsMatch", dcb.ErrInvalidQuery)
		}
		cond = &dcb.AppendCondition{FailIfEventsMatch: req.Condition.FailIfEventsMatch.Query(), After: req.Condition.After}
	}
	return events, cond, nil
}

// appendResponse is the answer to an append that returned last and err
// after took. A failed condition is not an error.
func appendResponse(last uint64, err error, took time.Duration) (wire.AppendResponse, error) {
	res := wire.AppendResponse{DurationInMicroseconds: took.Microseconds(), Position: last}
	if errors.Is(err, dcb.ErrAppendConditionFailed) {
		res.AppendConditionFailed, res.Position = true, 0
		return res, nil
	}
	return res, err
}

// readJSONBody reads the JSON body of r, within the size and time limits;
// when it cannot, it answers (413 with the code tooLarge when the body is
// over the limit) and returns false.
func (srv *Server) readJSONBody(w http.ResponseWriter, r *http.Request, op, tooLarge string) ([]byte, bool) {
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, wire.CodeUnsupported, "server: "+op+": the body must be JSON (Content-Type: application/json)")
		return nil, false
	}
	body, status, err := srv.readBody(w, r)
	if err != nil {
		code := wire.CodeBadRequest
		switch status {
		case http.StatusRequestEntityTooLarge:
			code = tooLarge
		case http.StatusRequestTimeout:
			code = wire.CodeTimeout
		}
		w.Header().Set("Connection", "close")
		writeError(w, status, code, err.Error())
		return nil, false
	}
	return body, true
}

// decode decodes body into v strictly; when it cannot, it answers 400 and
// returns false.
func decode(w http.ResponseWriter, op string, body []byte, v any) bool {
	if err := wire.DecodeStrict(body, v); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "server: "+op+": malformed request: "+err.Error())
		return false
	}
	return true
}

// utf8Error is the error of an append whose body is not UTF-8: it wraps
// the sentinel wire.CheckAppendUTF8 names, or is a bad request.
func utf8Error(op string, err error) error {
	if errors.Is(err, dcb.ErrInvalidEvent) || errors.Is(err, dcb.ErrInvalidQuery) {
		return fmt.Errorf("server: %s: %w", op, err)
	}
	return badRequest("server: " + op + ": " + err.Error())
}

// readBody reads a request body within the size and time limits. On error
// it returns the status to answer with.
func (srv *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := srv.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, errTooLarge(limit)
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(srv.opts.BodyTimeout)
	if err := rc.SetReadDeadline(deadline); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, errTooLarge(limit)
	case errors.As(err, &ne) && ne.Timeout(), err != nil && !time.Now().Before(deadline):
		return nil, http.StatusRequestTimeout, errors.New("server: the request body did not arrive within " + srv.opts.BodyTimeout.String() + "; nothing written")
	case err != nil:
		return nil, http.StatusBadRequest, errors.New("server: reading the request body: " + err.Error() + "; nothing written")
	}
	_ = rc.SetReadDeadline(time.Time{})
	return body, 0, nil
}

func errTooLarge(limit int64) error {
	return errors.New("server: the request body is over the limit of " + formatBytes(limit) + "; nothing written (append in smaller batches)")
}

func formatBytes(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

// read answers GET and POST /read: a JSON array of the matching events.
// Each write is bounded by StreamWriteTimeout, as a stream's is: a client
// that takes nothing for that long loses its read.
func (srv *Server) read(w http.ResponseWriter, r *http.Request) {
	req, ok := srv.parseReadRequest(w, r, false)
	if !ok {
		return
	}
	q, o := req.q, req.o
	srv.reads.Add(1)
	defer srv.reads.Add(-1)
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(srv.opts.StreamWriteTimeout))
		_, err := w.Write(b)
		return err
	}
	var buf []byte
	started := false // the array is begun in buf
	written := false // and part of it was sent: the status is out
	for e, err := range srv.st.Read(r.Context(), q, o) {
		if err != nil {
			if !written {
				// Nothing was sent: the error is the answer.
				srv.fail(w, r, err)
				return
			}
			// The 200 and part of the array are out: cut the
			// response short so that the client sees a broken
			// array, never a shorter one.
			srv.log.Warn("server: read failed mid-response", "err", err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			w.Header().Set("Content-Type", "application/json")
			buf = append(buf, '[')
			started = true
		} else {
			buf = append(buf, ',')
		}
		buf = storedir.AppendEvent(buf, e, false)
		if len(buf) >= 32<<10 {
			written = true
			if write(buf) != nil {
				return // the client went away, or took nothing for the timeout
			}
			buf = buf[:0]
		}
	}
	if !started {
		w.Header().Set("Content-Type", "application/json")
		buf = append(buf, '[')
	}
	buf = append(buf, "]\n"...)
	_ = write(buf)
}

// badRequestError is a request the server cannot parse.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

func badRequest(msg string) error { return &badRequestError{msg} }

// fail answers with the status and code err calls for.
func (srv *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := srv.errorOf(r, err)
	writeError(w, e.Status, e.Code, e.Message)
}

// errorOf returns the answer to err: its status, code and message.
func (srv *Server) errorOf(r *http.Request, err error) *wire.Error {
	var bad *badRequestError
	if errors.As(err, &bad) {
		return &wire.Error{Status: http.StatusBadRequest, Code: wire.CodeBadRequest, Message: err.Error()}
	}
	code := wire.Code(err)
	status := http.StatusInternalServerError
	switch code {
	case wire.CodeInvalidEvent, wire.CodeInvalidQuery:
		status = http.StatusBadRequest
	case wire.CodeIDConflict:
		status = http.StatusConflict
	case wire.CodeClosed:
		status = http.StatusServiceUnavailable
	case wire.CodeInternal:
		if r.Context().Err() != nil {
			status, code = http.StatusServiceUnavailable, wire.CodeUnavailable
		} else {
			srv.log.Error("server: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	return &wire.Error{Status: status, Code: code, Message: err.Error()}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Message: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // ends with a newline
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // cannot happen: the API's types always marshal
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"server: encoding the answer failed","code":"internal"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// isJSON reports whether a Content-Type is JSON.
func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
