package dcb_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetried: the rule of idempotent appends, against a store holding
// a (position 5), b (6) and c (9).
func TestRetried(t *testing.T) {
	ts := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	stored := map[string]struct {
		pos uint64
		e   dcb.Event
	}{
		"a": {5, dcb.Event{Type: "A", ID: "a", Timestamp: ts, Data: json.RawMessage(`{"x":1}`)}},
		"b": {6, dcb.Event{Type: "B", ID: "b", Tags: []string{"t"}, Timestamp: ts}},
		"c": {9, dcb.Event{Type: "C", ID: "c", Timestamp: ts}},
	}
	held := func(id string) (uint64, dcb.Event, bool, error) {
		s, ok := stored[id]
		return s.pos, s.e, ok, nil
	}
	a, b, c := stored["a"].e, stored["b"].e, stored["c"].e
	untimed := func(e dcb.Event) dcb.Event { e.Timestamp = time.Time{}; return e }
	other := func(e dcb.Event, f func(*dcb.Event)) dcb.Event { f(&e); return e }
	for _, tc := range []struct {
		name   string
		events []dcb.Event
		last   uint64
		why    string // "" no conflict
	}{
		{"a new append", []dcb.Event{{Type: "N", ID: "n"}, {Type: "M"}}, 0, ""},
		{"the same events", []dcb.Event{a, b}, 6, ""},
		{"without the store's timestamps", []dcb.Event{untimed(a), untimed(b)}, 6, ""},
		{"part of them, in order", []dcb.Event{b}, 6, ""},
		{"another order", []dcb.Event{b, a}, 0, "in their order"},
		{"not consecutive", []dcb.Event{b, c}, 0, "in their order"},
		{"other data", []dcb.Event{other(a, func(e *dcb.Event) { e.Data = json.RawMessage(`{"x":2}`) })}, 0, "differs in its data"},
		{"other timestamp", []dcb.Event{other(a, func(e *dcb.Event) { e.Timestamp = ts.Add(1) })}, 0, "differs in its timestamp"},
		{"with a new id", []dcb.Event{a, b, {Type: "N", ID: "n"}}, 0, "is new"},
		{"with an event without id", []dcb.Event{{Type: "N"}, a}, 0, "has no id"},
	} {
		last, err := dcb.Retried(tc.events, held)
		if tc.why == "" {
			require.NoError(t, err, tc.name)
			assert.Equal(t, tc.last, last, tc.name)
			continue
		}
		assert.ErrorIs(t, err, dcb.ErrIDConflict, tc.name)
		assert.ErrorContains(t, err, tc.why, tc.name)
	}
	boom := errors.New("boom")
	_, err := dcb.Retried([]dcb.Event{a}, func(string) (uint64, dcb.Event, bool, error) { return 0, dcb.Event{}, false, boom })
	assert.ErrorIs(t, err, boom, "a lookup error is returned")
}
