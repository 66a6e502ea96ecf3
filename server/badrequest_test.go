package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawHTTP is an HTTP client of the served store's socket that is not the
// Go client: it sends what the test says, byte for byte.
func (s *served) rawHTTP() *http.Client {
	path := storedir.SocketPath(s.dir)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// errorBody decodes an error answer and checks its shape.
func errorBody(t *testing.T, resp *http.Response) (msg, code string) {
	t.Helper()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	require.NotEmpty(t, e.Error)
	return e.Error, e.Code
}

// TestBadRequests: each bad request gets its status and a JSON error
// naming the problem, writes nothing, and the server goes on serving.
func TestBadRequests(t *testing.T) {
	s := serve(t, &server.Options{MaxBodyBytes: 64 << 10})
	hc := s.rawHTTP()
	_, err := s.st.Append(t.Context(), []dcb.Event{{Type: "Seed", Tags: []string{"t"}}}, nil)
	require.NoError(t, err)
	head := s.st.Head()
	q := func(s string) string { return url.QueryEscape(s) }
	for _, tc := range []struct {
		name, method, path, contentType, body string
		status                                int
		code, says                            string
	}{
		{"malformed JSON", "POST", "/append", "application/json", `{"events":[{"type":"T"}`, 400, "bad_request", "malformed"},
		{"not an object", "POST", "/append", "application/json", `[1,2]`, 400, "bad_request", "malformed"},
		{"unknown field", "POST", "/append", "application/json", `{"events":[{"type":"T","tagz":["a"]}]}`, 400, "bad_request", "tagz"},
		{"two values", "POST", "/append", "application/json", `{"events":[{"type":"T"}]} {}`, 400, "bad_request", "more than one"},
		{"no events", "POST", "/append", "application/json", `{"events":[]}`, 400, "invalid_event", "empty batch"},
		{"empty type", "POST", "/append", "application/json", `{"events":[{"type":""}]}`, 400, "invalid_event", "empty type"},
		{"invalid UTF-8 data", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\",\"data\":\"\xff\"}]}", 400, "invalid_event", "UTF-8"},
		{"empty query item in condition", "POST", "/append", "application/json", `{"events":[{"type":"T"}],"condition":{"failIfEventsMatch":{"items":[{}]}}}`, 400, "invalid_query", "neither types nor tags"},
		{"condition without query", "POST", "/append", "application/json", `{"events":[{"type":"T"}],"condition":{"after":3}}`, 400, "invalid_query", "failIfEventsMatch"},
		{"negative after", "POST", "/append", "application/json", `{"events":[{"type":"T"}],"condition":{"failIfEventsMatch":{},"after":-1}}`, 400, "bad_request", "after"},
		{"not JSON", "POST", "/append", "text/plain", `{"events":[{"type":"T"}]}`, 415, "unsupported_media", "Content-Type"},
		{"oversized body", "POST", "/append", "application/json", `{"events":[{"type":"T","data":"` + strings.Repeat("x", 65<<10) + `"}]}`, 413, "too_large", "limit"},
		{"read: query not JSON", "GET", "/read?query=" + q("{items"), "", "", 400, "bad_request", "query"},
		{"read: invalid query", "GET", "/read?query=" + q(`{"items":[{"types":[]}]}`), "", "", 400, "invalid_query", "neither types nor tags"},
		{"read: empty tag", "GET", "/read?query=" + q(`{"items":[{"tags":[""]}]}`), "", "", 400, "invalid_query", "empty tag"},
		{"read: unknown option", "GET", "/read?options=" + q(`{"form":1}`), "", "", 400, "bad_request", "form"},
		{"read: negative limit", "GET", "/read?options=" + q(`{"limit":-1}`), "", "", 400, "invalid_query", "negative limit"},
		{"stream: bad from", "GET", "/stream?from=x", "", "", 400, "invalid_query", "from"},
		{"read: a bad escape", "GET", "/read?query=%zz", "", "", 400, "bad_request", "does not parse"},
		{"read: a semicolon", "GET", "/read?query=" + q(`{"items":[{"tags":["t"]}]}`) + ";limit=1", "", "", 400, "bad_request", "does not parse"},
		{"read: unknown parameter", "GET", "/read?limt=1", "", "", 400, "bad_request", `unknown parameter "limt"`},
		{"read: a stream's parameter", "GET", "/read?follow=true", "", "", 400, "bad_request", `unknown parameter "follow"`},
		{"read: a parameter twice", "GET", "/read?from=1&from=2", "", "", 400, "bad_request", "2 times"},
		{"read: limit not a count", "GET", "/read?limit=ten", "", "", 400, "invalid_query", "limit"},
		{"read: limit over 64 bits", "GET", "/read?limit=18446744073709551616", "", "", 400, "invalid_query", "limit"},
		{"read: query not UTF-8", "GET", "/read?query=" + q("{\"items\":[{\"tags\":[\"\xff\"]}]}"), "", "", 400, "invalid_query", "UTF-8"},
		{"read: POST, query not UTF-8", "POST", "/read", "application/json", "{\"query\":{\"items\":[{\"tags\":[\"\xff\"]}]}}", 400, "invalid_query", "UTF-8"},
		{"read: POST, unknown field", "POST", "/read", "application/json", `{"qurey":{}}`, 400, "bad_request", "qurey"},
		{"read: POST, a stream's field", "POST", "/read", "application/json", `{"follow":true}`, 400, "bad_request", "POST /stream"},
		{"read: POST, with parameters", "POST", "/read?limit=1", "application/json", `{}`, 400, "bad_request", "takes no parameters"},
		{"read: POST, over the body limit", "POST", "/read", "application/json", `{"query":{"items":[{"tags":["` + strings.Repeat("x", 65<<10) + `"]}]}}`, 413, "invalid_query", "limit"},
		{"stream: POST, after without follow", "POST", "/stream", "application/json", `{"after":3}`, 400, "bad_request", "follow"},
		{"stream: POST, invalid query", "POST", "/stream", "application/json", `{"query":{"items":[{}]},"follow":true}`, 400, "invalid_query", "neither"},
		{"append: with parameters", "POST", "/append?sync=false", "application/json", `{"events":[{"type":"T"}]}`, 400, "bad_request", "takes no parameters"},
		{"head: with parameters", "GET", "/head?x=1", "", "", 400, "bad_request", "takes no parameters"},
		{"append: type not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\xff\"}]}", 400, "invalid_event", "event 0: dcb: invalid event: its type: not valid UTF-8"},
		{"append: tag not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\"},{\"type\":\"T\",\"tags\":[\"a\xff\"]}]}", 400, "invalid_event", "event 1: dcb: invalid event: its tags: not valid UTF-8"},
		{"append: metadata key not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\",\"metadata\":{\"\xfe\":\"v\"}}]}", 400, "invalid_event", "its metadata"},
		{"append: metadata value not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\",\"metadata\":{\"k\":\"\xc3\"}}]}", 400, "invalid_event", "its metadata"},
		{"append: condition tag not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\"}],\"condition\":{\"failIfEventsMatch\":{\"items\":[{\"tags\":[\"\xff\"]}]}}}", 400, "invalid_query", "condition"},
		{"append: key not UTF-8", "POST", "/append", "application/json", "{\"events\":[{\"type\":\"T\"}],\"\xff\":1}", 400, "bad_request", "UTF-8"},
		{"stream: after without follow", "GET", "/stream?after=3", "", "", 400, "bad_request", "follow"},
		{"stream: follow with limit", "GET", "/stream?follow=true&limit=3", "", "", 400, "bad_request", "limit"},
		{"stream: invalid query", "GET", "/stream?follow=true&query=" + q(`{"items":[{}]}`), "", "", 400, "invalid_query", "neither"},
		{"appends: malformed", "POST", "/appends", "application/json", `{"appends":[{"events":[{"type":"T"}]}`, 400, "bad_request", "malformed"},
		{"appends: not a list", "POST", "/appends", "application/json", `{"appends":{"events":[]}}`, 400, "bad_request", "malformed"},
		{"appends: too many", "POST", "/appends", "application/json", `{"appends":[` + strings.Repeat(`{"events":[]},`, 1024) + `{"events":[]}]}`, 400, "bad_request", "over the limit of 1024"},
		{"unknown path", "GET", "/events", "", "", 404, "not_found", "/events"},
		{"wrong method", "GET", "/append", "", "", 405, "method_not_allowed", "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "http://possum"+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			msg, code := errorBody(t, resp)
			assert.Equal(t, tc.code, code, msg)
			assert.Contains(t, msg, tc.says)
			assert.Equal(t, head, s.st.Head(), "nothing written")
		})
	}
	// In POST /appends, each append fails or succeeds on its own.
	resp, err := hc.Post("http://possum/appends", "application/json", strings.NewReader(
		`{"appends":[{"events":[{"type":""}]},{"events":[{"type":"T","tags":["t"]}],"condition":{"failIfEventsMatch":{"items":[{"tags":["t"]}]}}},{"events":[{"type":"T"}],"condition":{"failIfEventsMatch":{"items":[{}]}}}]}`))
	require.NoError(t, err)
	var results struct {
		Results []map[string]any `json:"results"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&results))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, results.Results, 3)
	assert.Equal(t, "invalid_event", results.Results[0]["code"])
	assert.Equal(t, true, results.Results[1]["appendConditionFailed"])
	assert.Nil(t, results.Results[1]["error"])
	assert.Equal(t, "invalid_query", results.Results[2]["code"])
	assert.Equal(t, head, s.st.Head(), "nothing written")

	// And the server goes on serving.
	resp, err = hc.Post("http://possum/append", "application/json", strings.NewReader(`{"events":[{"type":"After"}]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, head+1, s.st.Head())
}

// TestSlowBody: a body that trickles past the body timeout gets 408 and
// writes nothing; the server goes on serving.
func TestSlowBody(t *testing.T) {
	s := serve(t, &server.Options{BodyTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("unix", storedir.SocketPath(s.dir))
	require.NoError(t, err)
	defer conn.Close()
	body := `{"events":[{"type":"Slow"}]}`
	_, err = io.WriteString(conn, "POST /append HTTP/1.1\r\nHost: possum\r\nContent-Type: application/json\r\nContent-Length: "+
		itoa(len(body))+"\r\n\r\n"+body[:10])
	require.NoError(t, err)
	// The rest never comes in time: the answer does.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	msg, code := errorBody(t, resp)
	assert.Equal(t, "timeout", code)
	assert.Contains(t, msg, "did not arrive within 300ms")
	_, _ = io.WriteString(conn, body[10:]) // too late: the connection is closed or ignored
	assert.Zero(t, s.st.Head(), "nothing written")

	c := s.dial(t, nil)
	pos, err := c.Append(t.Context(), []dcb.Event{{Type: "Fast"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), pos)
}

// TestDisconnectMidStream: clients that go away mid-stream, or stop
// reading, end their streams and block neither the writer nor the other
// clients.
func TestDisconnectMidStream(t *testing.T) {
	s := serve(t, &server.Options{StreamWriteTimeout: 300 * time.Millisecond})
	ctx := t.Context()
	big := dcb.Event{Type: "Big", Tags: []string{"t"}, Data: json.RawMessage(`"` + strings.Repeat("x", 4000) + `"`)}
	for range 10 {
		_, err := s.st.Append(ctx, []dcb.Event{big}, nil)
		require.NoError(t, err)
	}
	// A follower of the whole store that hangs up after one line.
	conn, err := net.Dial("unix", storedir.SocketPath(s.dir))
	require.NoError(t, err)
	_, err = io.WriteString(conn, "GET /stream?follow=true HTTP/1.1\r\nHost: possum\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, line, `"position":1`)
	require.NoError(t, conn.Close())

	// A follower that never reads: its stream stalls, then ends.
	stalled, err := net.Dial("unix", storedir.SocketPath(s.dir))
	require.NoError(t, err)
	defer stalled.Close()
	_, err = io.WriteString(stalled, "GET /stream?follow=true HTTP/1.1\r\nHost: possum\r\n\r\n")
	require.NoError(t, err)

	// Meanwhile the writer and another client go on.
	c := s.dial(t, nil)
	var seen []uint64
	for i := range 200 {
		_, err := c.Append(ctx, []dcb.Event{big}, nil)
		require.NoError(t, err)
		if i == 0 {
			for e, err := range c.Subscribe(ctx, dcb.All(), 10) {
				require.NoError(t, err)
				seen = append(seen, e.Position)
				break
			}
		}
	}
	assert.Equal(t, []uint64{11}, seen)
	assert.Equal(t, uint64(210), s.st.Head())
	// Both streams end: the first when its connection closed, the stalled
	// one once a write to it blocked for the stream write timeout.
	require.Eventually(t, func() bool { return s.srv.Streams() == 0 }, testWait, pollEvery)
	got, err := collect(c.Read(ctx, dcb.All(), store.ReadOptions{From: 200}))
	require.NoError(t, err)
	assert.Len(t, got, 11)
}

func itoa(n int) string { return strconv.Itoa(n) }

// httpRead reads a tag's events with GET /read, as a program in another
// language would, and returns how many came.
func httpRead(ctx context.Context, s *served, tag string) (int, error) {
	if s.hc == nil {
		s.hc = s.rawHTTP()
		s.hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	}
	q := url.QueryEscape(`{"items":[{"tags":[` + strconv.Quote(tag) + `]}]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://possum/read?query="+q, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var events []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&events); err != nil {
		return 0, err
	}
	return len(events), nil
}
