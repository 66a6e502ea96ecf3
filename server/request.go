package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/store"
)

// readRequest is what a read or a stream asks: as the parameters of GET
// /read and GET /stream (the shape the DCB community test suite's adapter
// sends), or as the JSON body of POST /read and POST /stream (a
// wire.ReadRequest), which carries a query of any size.
type readRequest struct {
	q dcb.Query
	o store.ReadOptions
	// Streams only.
	follow    bool
	after     uint64
	hasAfter  bool
	heartbeat time.Duration // 0: the server's
}

// The parameters each operation takes; any other is refused.
var (
	readParamNames   = []string{"query", "options", "from", "limit", "backwards"}
	streamParamNames = append(slices.Clip(readParamNames), "follow", "after", "heartbeat")
)

// parseReadRequest parses the read or stream request of r, from its
// parameters (GET) or its body (POST). When it cannot, it answers and
// returns false. The errors wrap dcb.ErrInvalidQuery (a query or read
// options no store would take) or are bad requests.
func (srv *Server) parseReadRequest(w http.ResponseWriter, r *http.Request, stream bool) (readRequest, bool) {
	op, names := "read", readParamNames
	if stream {
		op, names = "stream", streamParamNames
	}
	var req readRequest
	var err error
	if r.Method == http.MethodPost {
		// A body over the limit holds a query no server takes: the
		// read's sentinel, ErrInvalidQuery.
		b, ok := srv.readJSONBody(w, r, op, wire.CodeInvalidQuery)
		if !ok {
			return req, false
		}
		if !utf8.Valid(b) {
			// The only strings of the body are the query's.
			srv.fail(w, r, fmt.Errorf("server: %s: %w: the query is not valid UTF-8", op, dcb.ErrInvalidQuery))
			return req, false
		}
		var body wire.ReadRequest
		if !decode(w, op, b, &body) {
			return req, false
		}
		req, err = fromReadBody(body, stream)
	} else {
		req, err = fromParams(r.URL.RawQuery, names)
	}
	if err == nil {
		err = req.check(stream)
	}
	if err != nil {
		srv.fail(w, r, err)
		return req, false
	}
	return req, true
}

// params parses a query string strictly: url.Values, or an error for a
// string that does not parse (a bad escape, a ';'), a parameter other than
// names, or one given twice. r.URL.Query() would drop what does not parse
// and read on, and a misspelt limit would read everything.
func params(raw string, names []string) (url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("server: the query string does not parse: " + err.Error())
	}
	for name, vs := range v {
		if !slices.Contains(names, name) {
			return nil, badRequest(fmt.Sprintf("server: unknown parameter %q (this operation takes %s)", name, strings.Join(names, ", ")))
		}
		if len(vs) > 1 {
			return nil, badRequest(fmt.Sprintf("server: parameter %q given %d times", name, len(vs)))
		}
	}
	return v, nil
}

// fromParams parses the parameters of GET /read or GET /stream.
func fromParams(raw string, names []string) (readRequest, error) {
	var req readRequest
	v, err := params(raw, names)
	if err != nil {
		return req, err
	}
	if req.q, err = parseQuery(v.Get("query")); err != nil {
		return req, err
	}
	var wo wire.ReadOptions
	if s := v.Get("options"); s != "" {
		if err := wire.DecodeStrict([]byte(s), &wo); err != nil {
			return req, badRequest("server: options: not a JSON object of from, limit, backwards: " + err.Error())
		}
	}
	req.o = store.ReadOptions{From: wo.From, Limit: wo.Limit, Backwards: wo.Backwards}
	if s := v.Get("from"); s != "" {
		if req.o.From, err = parseUint(s); err != nil {
			return req, fmt.Errorf("server: from: %w: %w", dcb.ErrInvalidQuery, err)
		}
	}
	if s := v.Get("limit"); s != "" {
		// As wide as ReadOptions.Limit: 64 bits where int is.
		n, err := strconv.ParseInt(s, 10, strconv.IntSize)
		if err != nil {
			return req, fmt.Errorf("server: limit: %w: not a count of %d bits: %s", dcb.ErrInvalidQuery, strconv.IntSize, strconv.Quote(s))
		}
		req.o.Limit = int(n) // negative: ErrInvalidQuery in check, as embedded
	}
	if s := v.Get("backwards"); s != "" {
		if req.o.Backwards, err = parseBool(s); err != nil {
			return req, fmt.Errorf("server: backwards: %w: %w", dcb.ErrInvalidQuery, err)
		}
	}
	if s := v.Get("follow"); s != "" {
		if req.follow, err = parseBool(s); err != nil {
			return req, badRequest("server: follow: " + err.Error())
		}
	}
	if s := v.Get("after"); s != "" {
		if req.after, err = parseUint(s); err != nil {
			return req, badRequest("server: after: " + err.Error())
		}
		req.hasAfter = true
	}
	if s := v.Get("heartbeat"); s != "" {
		ms, err := parseUint(s)
		if err != nil {
			return req, badRequest("server: heartbeat: milliseconds: " + err.Error())
		}
		req.heartbeat = heartbeatOf(ms)
	}
	return req, nil
}

// fromReadBody is the request of POST /read or POST /stream.
func fromReadBody(body wire.ReadRequest, stream bool) (readRequest, error) {
	var req readRequest
	if !stream && (body.Follow || body.After != nil || body.Heartbeat != 0) {
		return req, badRequest("server: read: follow, after and heartbeat are for POST /stream")
	}
	req.q = dcb.All()
	if body.Query != nil {
		req.q = body.Query.Query()
	}
	if body.Options != nil {
		req.o = store.ReadOptions{From: body.Options.From, Limit: body.Options.Limit, Backwards: body.Options.Backwards}
	}
	req.follow = body.Follow
	if body.After != nil {
		req.after, req.hasAfter = *body.After, true
	}
	if body.Heartbeat != 0 {
		req.heartbeat = heartbeatOf(body.Heartbeat)
	}
	return req, nil
}

// check validates a parsed request as the store would, and the stream's
// parameters among themselves.
func (req *readRequest) check(stream bool) error {
	if err := req.q.Validate(); err != nil {
		return err
	}
	if _, _, err := req.o.Span(0); err != nil {
		return err
	}
	if !stream {
		return nil
	}
	if req.hasAfter && !req.follow {
		return badRequest("server: after is for follow=true; a read starts at from")
	}
	if !req.hasAfter && req.o.From > 0 {
		req.after = req.o.From - 1
	}
	if req.follow && (req.o.Limit != 0 || req.o.Backwards) {
		return badRequest("server: follow=true takes no limit or backwards")
	}
	return nil
}

// heartbeatOf is the heartbeat a stream asks for, in milliseconds, within
// MinHeartbeat and MaxHeartbeat.
func heartbeatOf(ms uint64) time.Duration {
	ms = min(ms, uint64(MaxHeartbeat/time.Millisecond))
	return min(max(time.Duration(ms)*time.Millisecond, MinHeartbeat), MaxHeartbeat)
}

// parseQuery parses a query parameter; empty means every event. Its
// strings must be UTF-8: encoding/json would turn a stray byte into U+FFFD
// and match another tag than the one asked for.
func parseQuery(s string) (dcb.Query, error) {
	if s == "" {
		return dcb.All(), nil
	}
	if !utf8.ValidString(s) {
		return dcb.Query{}, fmt.Errorf("server: query: %w: not valid UTF-8", dcb.ErrInvalidQuery)
	}
	var wq wire.Query
	if err := wire.DecodeStrict([]byte(s), &wq); err != nil {
		return dcb.Query{}, badRequest(`server: query: not a JSON query ({"items":[{"types":[...],"tags":[...]}]}): ` + err.Error())
	}
	return wq.Query(), nil
}

func parseUint(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a position: " + strconv.Quote(s))
	}
	return n, nil
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("not true or false: " + strconv.Quote(s))
	}
	return b, nil
}
