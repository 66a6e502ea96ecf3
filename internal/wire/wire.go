// Package wire is the JSON of possum's HTTP API, shared by the server that
// speaks it and the Go client: the shapes of queries, events, append
// requests and stream lines, and the error codes that carry the store's
// and dcb's sentinel errors across the connection. docs/openapi.yaml
// describes the same shapes for programs in other languages.
//
// It sits above package store, with the server and the client, which are
// its only users.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// Query is a dcb.Query as JSON: {"items":[{"types":[...],"tags":[...]}]}.
// No items (or no query at all) selects every event.
type Query struct {
	Items []QueryItem `json:"items"`
}

// QueryItem is a dcb.QueryItem as JSON.
type QueryItem struct {
	Types []string `json:"types,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// FromQuery converts q to its JSON shape.
func FromQuery(q dcb.Query) Query {
	w := Query{Items: make([]QueryItem, len(q.Items))}
	for i, it := range q.Items {
		w.Items[i] = QueryItem{Types: it.Types, Tags: it.Tags}
	}
	return w
}

// Query converts w to a dcb.Query (not validated).
func (w Query) Query() dcb.Query {
	if len(w.Items) == 0 {
		return dcb.All()
	}
	q := dcb.Query{Items: make([]dcb.QueryItem, len(w.Items))}
	for i, it := range w.Items {
		q.Items[i] = dcb.QueryItem{Types: it.Types, Tags: it.Tags}
	}
	return q
}

// ReadOptions are store.ReadOptions as JSON.
type ReadOptions struct {
	From      uint64 `json:"from,omitempty"`
	Limit     int    `json:"limit,omitempty"`
	Backwards bool   `json:"backwards,omitempty"`
}

// ReadRequest is the body of POST /read and POST /stream: what GET /read
// and GET /stream take as parameters, for a query too large for a URL.
// Follow, After and Heartbeat are for POST /stream only.
type ReadRequest struct {
	Query     *Query       `json:"query,omitempty"`
	Options   *ReadOptions `json:"options,omitempty"`
	Follow    bool         `json:"follow,omitempty"`
	After     *uint64      `json:"after,omitempty"`
	Heartbeat uint64       `json:"heartbeat,omitempty"` // milliseconds
}

// Event is a dcb.Event as an append request carries it. Data is any JSON
// value, kept byte for byte.
type Event struct {
	Type     string            `json:"type"`
	Tags     []string          `json:"tags,omitempty"`
	Data     json.RawMessage   `json:"data,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	ID       string            `json:"id,omitempty"`
	// Timestamp, RFC 3339 (with nanoseconds, any offset); absent: the
	// store's. The zero time is refused: leave the key out instead.
	Timestamp *time.Time `json:"timestamp,omitempty"`
}

// Event returns the dcb.Event e stands for. A timestamp that is the zero
// time is an error wrapping dcb.ErrInvalidEvent: sent explicitly, it is a
// mistake, not a request for the store's.
func (e Event) Event() (dcb.Event, error) {
	out := dcb.Event{Type: e.Type, Tags: e.Tags, Data: e.Data, Metadata: e.Metadata, ID: e.ID}
	if e.Timestamp != nil {
		if e.Timestamp.IsZero() {
			return dcb.Event{}, fmt.Errorf("%w: event of type %q: timestamp 0001-01-01T00:00:00Z is the zero time; leave the timestamp out for the store's", dcb.ErrInvalidEvent, e.Type)
		}
		out.Timestamp = e.Timestamp.UTC()
	}
	return out, nil
}

// Condition is a dcb.AppendCondition as JSON. FailIfEventsMatch is
// required; After is optional (0: every event counts).
type Condition struct {
	FailIfEventsMatch *Query `json:"failIfEventsMatch"`
	After             uint64 `json:"after,omitempty"`
}

// AppendRequest is the body of POST /append.
type AppendRequest struct {
	Events    []Event    `json:"events"`
	Condition *Condition `json:"condition,omitempty"`
}

// AppendResponse is the body of a 200 answer to POST /append. Position is
// the last appended position; absent (0) when the condition failed.
type AppendResponse struct {
	DurationInMicroseconds int64  `json:"durationInMicroseconds"`
	AppendConditionFailed  bool   `json:"appendConditionFailed"`
	Position               uint64 `json:"position,omitempty"`
}

// AppendsRequest is the body of POST /appends: independent appends.
type AppendsRequest struct {
	Appends []AppendRequest `json:"appends"`
}

// AppendsResponse is the body of a 200 answer to POST /appends: one result
// per append, in the order of the request.
type AppendsResponse struct {
	Results []AppendResult `json:"results"`
}

// AppendResult is the outcome of one append of POST /appends: an
// AppendResponse, or an Error (error and code set, status omitted).
type AppendResult struct {
	AppendResponse
	*Error
}

// HeadResponse is the body of GET /head: the head, and the projection's
// positions when the served store reports them (store.Stats).
type HeadResponse struct {
	Head         uint64  `json:"head"`
	Projected    *uint64 `json:"projected,omitempty"`
	Checkpointed *uint64 `json:"checkpointed,omitempty"`
	Lag          *uint64 `json:"lag,omitempty"`
	MaxLag       *uint64 `json:"maxLag,omitempty"`
	// LagBound, MaxDelayNs and ProjectionRate are the lag bound in force,
	// in events, the bound in time (nanoseconds; negative: none) and the
	// projector's measured rate in events/s (store.Stats).
	LagBound       *uint64  `json:"lagBound,omitempty"`
	MaxDelayNs     *int64   `json:"maxDelayNs,omitempty"`
	ProjectionRate *float64 `json:"projectionRate,omitempty"`
	// MaxBodyBytes is the largest request body the server takes: an
	// append whose body is larger is refused (413, too_large).
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
}

// Error is the body of every answer that is not a success: a message for
// people and a code for programs (see Code).
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Status is the HTTP status the error is answered with (not sent).
	Status int `json:"-"`
}

// The error codes, each with the sentinel it stands for, if any.
const (
	CodeBadRequest      = "bad_request"       // malformed JSON, unknown fields, bad parameters
	CodeInvalidEvent    = "invalid_event"     // dcb.ErrInvalidEvent
	CodeInvalidQuery    = "invalid_query"     // dcb.ErrInvalidQuery
	CodeIDConflict      = "id_conflict"       // dcb.ErrIDConflict
	CodeConditionFailed = "condition_failed"  // dcb.ErrAppendConditionFailed (stream lines only; /append answers 200)
	CodeClosed          = "closed"            // store.ErrClosed
	CodeCorrupt         = "corrupt"           // store.ErrCorrupt
	CodePoisoned        = "poisoned"          // store.ErrPoisoned
	CodeLocked          = "locked"            // store.ErrLocked
	CodeTooLarge        = "too_large"         // a body over the limit (also dcb.ErrInvalidEvent: the batch cannot be stored this way)
	CodeTimeout         = "timeout"           // the body did not arrive in time
	CodeUnauthorized    = "unauthorized"      // missing or wrong bearer token
	CodeUnsupported     = "unsupported_media" // POST without Content-Type application/json
	CodeNotFound        = "not_found"
	CodeMethod          = "method_not_allowed"
	CodeUnavailable     = "unavailable" // the server is shutting down or the request was cancelled
	CodeSlowReader      = "slow_reader" // a stream whose client fell behind while the server's streams held all the memory they may (stream lines only)
	CodeInternal        = "internal"
)

var sentinels = []struct {
	code string
	err  error
}{
	{CodeInvalidEvent, dcb.ErrInvalidEvent},
	{CodeInvalidQuery, dcb.ErrInvalidQuery},
	{CodeIDConflict, dcb.ErrIDConflict},
	{CodeConditionFailed, dcb.ErrAppendConditionFailed},
	{CodeClosed, store.ErrClosed},
	{CodeCorrupt, store.ErrCorrupt},
	{CodePoisoned, store.ErrPoisoned},
	{CodeLocked, store.ErrLocked},
	{CodeTooLarge, dcb.ErrInvalidEvent},
}

// Code returns the error code of err: the code of the first sentinel it
// wraps, CodeInternal for any other error.
func Code(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return CodeInternal
}

// Sentinel returns the sentinel error a code stands for, nil when none.
func Sentinel(code string) error {
	for _, s := range sentinels {
		if s.code == code {
			return s.err
		}
	}
	return nil
}

// Err turns an error answer back into an error that wraps the sentinel its
// code stands for.
func (e Error) Err() error {
	if s := Sentinel(e.Code); s != nil {
		// The message already names the sentinel: wrap it without
		// repeating it.
		return &remoteError{msg: e.Message, code: e.Code, sentinel: s}
	}
	return &remoteError{msg: e.Message, code: e.Code}
}

type remoteError struct {
	msg, code string
	sentinel  error
}

// RemoteCode returns the code of the error answer err wraps (see Err), ""
// when it wraps none.
func RemoteCode(err error) string {
	var re *remoteError
	if errors.As(err, &re) {
		return re.code
	}
	return ""
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// Line is one line of a stream (GET /stream), as the client decodes it:
// an event (Position > 0; its Event), a heartbeat, the end of a read, or an
// error.
type Line struct {
	storedir.EventJSON

	Heartbeat bool   `json:"heartbeat"`
	End       bool   `json:"end"`
	Error     string `json:"error"`
	Code      string `json:"code"`
}

// CheckAppendUTF8 returns nil when b, the JSON of an append request, is
// valid UTF-8. encoding/json turns every byte that is not into U+FFFD,
// silently (two different tags would be stored as one), so a server checks
// before it decodes. The error wraps dcb.ErrInvalidEvent when the byte is
// in an event (it names the event and the field), dcb.ErrInvalidQuery when
// it is in the condition, and neither when it is elsewhere (a key).
func CheckAppendUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	var req struct {
		Events    []json.RawMessage `json:"events"`
		Condition json.RawMessage   `json:"condition"`
	}
	if json.Unmarshal(b, &req) == nil { // RawMessage keeps the bytes as sent
		for i, e := range req.Events {
			if err := CheckEventUTF8(e); err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
		}
		if !utf8.Valid(req.Condition) {
			return fmt.Errorf("%w: the condition's query is not valid UTF-8", dcb.ErrInvalidQuery)
		}
	}
	return errors.New("the request is not valid UTF-8")
}

// CheckEventUTF8 returns nil when b, the JSON of one event, is valid
// UTF-8, and otherwise an error wrapping dcb.ErrInvalidEvent that names
// the field (see CheckAppendUTF8).
func CheckEventUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	var e map[string]json.RawMessage
	if json.Unmarshal(b, &e) == nil {
		for _, field := range []string{"type", "tags", "data", "metadata", "id"} {
			if !utf8.Valid(e[field]) {
				return fmt.Errorf("%w: its %s: not valid UTF-8", dcb.ErrInvalidEvent, field)
			}
		}
	}
	return fmt.Errorf("%w: not valid UTF-8", dcb.ErrInvalidEvent)
}

// DecodeStrict decodes exactly one JSON value from b into v, refusing
// unknown fields and anything after the value.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// AppendRequestBody appends the body of POST /append for events and cond.
// Each event's Data goes byte for byte (it must be valid JSON: see
// dcb.ValidateBatch), which json.Marshal of a json.RawMessage would not
// do: it compacts and escapes. Its length is AppendRequestOverhead, plus
// the length of each event's AppendEventBody and a comma between two
// events, plus the condition's.
func AppendRequestBody(dst []byte, events []dcb.Event, cond *dcb.AppendCondition) []byte {
	dst = append(dst, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendEventBody(dst, e)
	}
	dst = append(dst, ']')
	if cond != nil {
		q, _ := json.Marshal(FromQuery(cond.FailIfEventsMatch)) // strings only: always marshals
		dst = append(dst, `,"condition":{"failIfEventsMatch":`...)
		dst = append(dst, q...)
		dst = append(dst, `,"after":`...)
		dst = strconv.AppendUint(dst, cond.After, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// AppendRequestOverhead is the length of an append request's body without
// its events and condition: {"events":[]}.
const AppendRequestOverhead = len(`{"events":[]}`)

// AppendEventBody appends e as an append request carries it (see
// AppendRequestBody).
func AppendEventBody(dst []byte, e dcb.Event) []byte {
	dst = append(dst, `{"type":`...)
	dst = storedir.AppendString(dst, e.Type)
	if len(e.Tags) > 0 {
		dst = append(dst, `,"tags":[`...)
		for j, t := range e.Tags {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = storedir.AppendString(dst, t)
		}
		dst = append(dst, ']')
	}
	if len(e.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	}
	if len(e.Metadata) > 0 {
		dst = append(dst, `,"metadata":{`...)
		first := true
		for k, v := range e.Metadata {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = storedir.AppendString(dst, k)
			dst = append(dst, ':')
			dst = storedir.AppendString(dst, v)
		}
		dst = append(dst, '}')
	}
	if e.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = storedir.AppendString(dst, e.ID)
	}
	if !e.Timestamp.IsZero() {
		dst = append(dst, `,"timestamp":"`...)
		dst = e.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}
