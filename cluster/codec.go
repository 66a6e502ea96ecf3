package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/possumstore/possum/dcb"
)

// The message layout: one stream message per event (docs/FORMAT.md, "The
// cluster stream"). Everything that knows how an event is carried by a
// message is in this file.

// Header names. Their values are ASCII: strings go as JSON (non-ASCII as
// \u escapes), so that no tag, key or value can break a header line.
const (
	hdrTags      = "Possum-Tags"       // JSON array of strings; absent: no tags
	hdrMetadata  = "Possum-Metadata"   // JSON object of strings; absent: none
	hdrTime      = "Possum-Time"       // RFC 3339, UTC, nanoseconds
	hdrID        = "Possum-Id"         // JSON string; absent: no id
	hdrBatch     = "Possum-Batch"      // the id of the append batch the event came in
	hdrBatchSize = "Possum-Batch-Size" // on a batch's first message: its event count
	hdrLost      = "Possum-Lost"       // "1": a lost position's marker
)

// Limits of one append (one atomic batch), from JetStream's defaults: a
// batch holds at most 1,000 messages, a message's headers are counted in
// 16 bits, and a message (headers and data) is at most the server's
// max_payload, 1 MiB unless configured otherwise.
const (
	// MaxAppendEvents is the most events one append may carry.
	MaxAppendEvents = 1000
	// maxHeaderBytes bounds a message's header block as JetStream stores it.
	maxHeaderBytes = 1<<16 - 1
	// headerReserve is kept free in every message for the headers added
	// after encoding: JetStream's batch headers (Nats-Batch-Id,
	// Nats-Batch-Sequence, Nats-Batch-Commit), Nats-Expected-Last-Sequence,
	// Nats-Msg-Id and possum's batch headers.
	headerReserve = 512
	// maxSubjectBytes bounds a subject, well inside the 4 KiB control line
	// a NATS server accepts (which also holds the reply subject and sizes).
	maxSubjectBytes = 2048
)

// lostToken is the subject token of a lost position whose type is unknown:
// a '%' not followed by two hex digits, which no escaped type produces.
const lostToken = "%"

// streamEvent is an event as the stream carries it: the Event with its
// ID, and its Timestamp (the time the node stamped its append with, or the
// caller gave), exactly.
type streamEvent struct {
	dcb.Event
	// Lost marks a position whose event was lost (issue 20): Type and Tags
	// hold what is known of it, Data and Metadata are empty.
	Lost bool
}

// batchMark is what a message says of the append batch it came in.
type batchMark struct {
	id   string // Possum-Batch
	size int    // Possum-Batch-Size: the batch's event count on its first message, else 0
}

// typeToken escapes an event type into one subject token: the bytes
// A-Z, a-z, 0-9, '-' and '_' stand for themselves, every other byte of the
// type's UTF-8 is '%' and two upper-case hex digits. The escaping is
// reversible, so two types never share a token, and a token holds no
// space, control character, '.', '*' or '>'.
func typeToken(typ string) string {
	var b strings.Builder
	b.Grow(len(typ))
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if verbatim(c) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func verbatim(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// typeFromToken is the inverse of typeToken. It refuses a token typeToken
// cannot produce (lower-case hex, an escaped byte that stands for itself,
// a byte that must be escaped), so that every type has exactly one token.
func typeFromToken(tok string) (string, error) {
	if tok == "" {
		return "", errors.New("empty type token")
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case verbatim(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(tok) && upperHex(tok[i+1]) && upperHex(tok[i+2]):
			v := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if verbatim(v) {
				return "", fmt.Errorf("type token %q escapes %q, which stands for itself", tok, v)
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", fmt.Errorf("type token %q: byte %d is not a possum escape", tok, i)
		}
	}
	typ := b.String()
	if !utf8.ValidString(typ) {
		return "", fmt.Errorf("type token %q is not UTF-8 once unescaped", tok)
	}
	return typ, nil
}

func upperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// appendJSONString appends s as a JSON string of ASCII bytes only: '"',
// '\\' and control characters escaped as JSON requires, every non-ASCII
// rune as \uXXXX (a surrogate pair above U+FFFF). s must be valid UTF-8.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
	}
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20 || r == 0x7f:
			dst = u(dst, r)
		case r < utf8.RuneSelf:
			dst = append(dst, byte(r))
		case r <= 0xffff:
			dst = u(dst, r)
		default:
			r -= 0x10000
			dst = u(dst, 0xd800+(r>>10))
			dst = u(dst, 0xdc00+(r&0x3ff))
		}
	}
	return append(dst, '"')
}

// formatTime is the Possum-Time value of t: RFC 3339 in UTC with as many
// fractional digits as needed (none to nine).
func formatTime(t time.Time) (string, error) {
	b, err := t.UTC().MarshalText() // RFC 3339 with nanoseconds; refuses years outside 0..9999
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// maxTimeValue is the longest Possum-Time value, for size checks made
// before the timestamp is known.
const maxTimeValue = "2006-01-02T15:04:05.999999999Z"

// encodeEvent returns the message that carries e on the stream under
// prefix, without the batch headers (see setBatch). A zero e.Timestamp is
// encoded as the longest time value, to be replaced once the append is
// stamped (see setTime); the size checks then hold for any time.
func encodeEvent(prefix string, e streamEvent) (*nats.Msg, error) {
	token := lostToken
	if e.Type != "" || !e.Lost {
		token = typeToken(e.Type)
	}
	m := nats.NewMsg(prefix + "." + token)
	if len(e.Tags) > 0 {
		m.Header.Set(hdrTags, tagsValue(e.Tags))
	}
	if len(e.Metadata) > 0 {
		m.Header.Set(hdrMetadata, metadataValue(e.Metadata))
	}
	if e.ID != "" {
		m.Header.Set(hdrID, string(appendJSONString(nil, e.ID)))
	}
	if e.Lost {
		m.Header.Set(hdrLost, "1")
	}
	ts := maxTimeValue
	if !e.Timestamp.IsZero() {
		var err error
		if ts, err = formatTime(e.Timestamp); err != nil {
			return nil, fmt.Errorf("%w: event of type %q: timestamp %v: %v", dcb.ErrInvalidEvent, e.Type, e.Timestamp, err)
		}
	}
	m.Header.Set(hdrTime, ts)
	m.Data = e.Data
	return m, nil
}

// tagsValue is the Possum-Tags value of tags: a JSON array in their order.
func tagsValue(tags []string) string {
	b := append(make([]byte, 0, 64), '[')
	for i, t := range tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t)
	}
	return string(append(b, ']'))
}

// metadataValue is the Possum-Metadata value of md: a JSON object, keys in
// byte order.
func metadataValue(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := append(make([]byte, 0, 64), '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, md[k])
	}
	return string(append(b, '}'))
}

// setTime stamps m with t (see encodeEvent).
func setTime(m *nats.Msg, t time.Time) error {
	ts, err := formatTime(t)
	if err != nil {
		return err
	}
	m.Header.Set(hdrTime, ts)
	return nil
}

// setBatch marks m as a message of the append batch id; first says it is
// the batch's first message, of size events.
func setBatch(m *nats.Msg, id string, first bool, size int) {
	m.Header.Set(hdrBatch, id)
	if first {
		m.Header.Set(hdrBatchSize, strconv.Itoa(size))
	}
}

// headerBytes is the size of h's header block on the wire and in the
// stream: "NATS/1.0\r\n", then "Key: Value\r\n" per value, then "\r\n".
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n") + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// checkLimits refuses a message that cannot travel in an atomic batch:
// a subject longer than maxSubjectBytes, headers over maxHeaderBytes, or
// headers and data together over maxPayload (the server's max_payload),
// each with headerReserve kept for the headers added later. The error
// wraps dcb.ErrInvalidEvent and names the limit.
func checkLimits(m *nats.Msg, typ string, maxPayload int) error {
	if len(m.Subject) > maxSubjectBytes {
		return fmt.Errorf("%w: event of type %q: its subject %d bytes long exceeds the %d-byte limit of the cluster stream (shorten the type)",
			dcb.ErrInvalidEvent, typ, len(m.Subject), maxSubjectBytes)
	}
	h := headerBytes(m.Header) + headerReserve
	if h > maxHeaderBytes {
		return fmt.Errorf("%w: event of type %q: tags, metadata and id take %d bytes of headers, over the %d-byte header limit of a JetStream message",
			dcb.ErrInvalidEvent, typ, h, maxHeaderBytes)
	}
	if h+len(m.Data) > maxPayload {
		return fmt.Errorf("%w: event of type %q: %d bytes (data and headers) exceed the NATS server's %d-byte message limit (max_payload)",
			dcb.ErrInvalidEvent, typ, h+len(m.Data), maxPayload)
	}
	return nil
}

// errLayout wraps what does not follow possum's message layout.
var errLayout = errors.New("not possum's message layout")

// decodeEvent reads the event a stream message under prefix carries, and
// its batch mark. It refuses, with an error wrapping errLayout, a message
// that possum did not write: another subject, a missing or malformed
// header.
func decodeEvent(prefix, subject string, h nats.Header, data []byte) (streamEvent, batchMark, error) {
	var e streamEvent
	var mark batchMark
	bad := func(format string, args ...any) (streamEvent, batchMark, error) {
		return streamEvent{}, batchMark{}, fmt.Errorf("%w: %s", errLayout, fmt.Sprintf(format, args...))
	}
	tok, ok := strings.CutPrefix(subject, prefix+".")
	if !ok || strings.Contains(tok, ".") {
		return bad("subject %q is not %s.<type>", subject, prefix)
	}
	switch v := h.Get(hdrLost); v {
	case "":
	case "1":
		e.Lost = true
	default:
		return bad("%s is %q", hdrLost, v)
	}
	if !(e.Lost && tok == lostToken) {
		typ, err := typeFromToken(tok)
		if err != nil {
			return bad("%v", err)
		}
		e.Type = typ
	}
	// Each value must be the one the encoder writes for what it decodes
	// to: one spelling per value (json.Unmarshal alone would take raw
	// UTF-8, other escapes, duplicate keys).
	if v, ok := header(h, hdrTags); ok {
		if json.Unmarshal([]byte(v), &e.Tags) != nil || len(e.Tags) == 0 || tagsValue(e.Tags) != v {
			return bad("%s %q is not possum's JSON array of strings", hdrTags, v)
		}
	}
	if v, ok := header(h, hdrMetadata); ok {
		if json.Unmarshal([]byte(v), &e.Metadata) != nil || len(e.Metadata) == 0 || metadataValue(e.Metadata) != v {
			return bad("%s %q is not possum's JSON object of strings", hdrMetadata, v)
		}
	}
	if v, ok := header(h, hdrID); ok {
		if json.Unmarshal([]byte(v), &e.ID) != nil || e.ID == "" || string(appendJSONString(nil, e.ID)) != v {
			return bad("%s %q is not possum's JSON string", hdrID, v)
		}
	}
	v, ok := header(h, hdrTime)
	if !ok {
		return bad("no %s header", hdrTime)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Location() != time.UTC {
		return bad("%s %q is not an RFC 3339 UTC time", hdrTime, v)
	}
	if canon, _ := formatTime(t); canon != v {
		return bad("%s %q is not written as possum writes it (%s)", hdrTime, v, canon)
	}
	e.Timestamp = t
	if mark.id = h.Get(hdrBatch); mark.id == "" {
		return bad("no %s header", hdrBatch)
	}
	if v, ok := header(h, hdrBatchSize); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || strconv.Itoa(n) != v {
			return bad("%s %q is not a positive count", hdrBatchSize, v)
		}
		mark.size = n
	}
	if len(data) > 0 {
		e.Data = data
	}
	if e.Lost && (e.Data != nil || e.Metadata != nil || e.ID != "") {
		return bad("a lost position's marker carries data, metadata or an id")
	}
	return e, mark, nil
}

// header returns h's single value for key; a key given twice is malformed
// and reported as present with an empty value.
func header(h nats.Header, key string) (string, bool) {
	vs, ok := h[key]
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		return "", true
	}
	return vs[0], true
}
