// Package conformance is the small DCB conformance check every store of the
// peer benchmark passes before it is measured: a store that gets DCB wrong
// (a condition that misses a match, a position consumed by a failed append,
// a batch checked against itself) could otherwise post flattering numbers.
//
// Each check runs on a fresh, empty store in its own directory. The
// semantics checked are possum's (see the dcb and store packages): types are
// OR'd within a query item, tags AND'd, items OR'd; an item with neither is
// invalid; a condition's After is exclusive and may lie beyond the head; a
// batch is never checked against itself; a failed append writes nothing and
// consumes no position; positions are gap-free from 1; duplicate tags are
// dropped and Data is kept less surrounding whitespace.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
)

// Opener opens (creating when needed) the store kept in dir.
type Opener func(dir string) (workload.Store, error)

// Check is one named property of DCB.
type Check struct {
	Name string
	// Run checks the property on the fresh store s, opened by open in dir
	// (open may be used to reopen it after closing s).
	Run func(ctx context.Context, s workload.Store, open Opener, dir string) error
}

// Checks returns every check, in a stable order.
func Checks() []Check { return checks }

// Run runs every check against the stores open makes, each in a fresh
// directory under root, and returns every failure joined (nil: conformant).
func Run(ctx context.Context, open Opener, root string) error {
	var errs []error
	for i, c := range checks {
		dir := filepath.Join(root, fmt.Sprintf("check-%02d", i))
		if err := RunOne(ctx, c, open, dir); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// RunOne runs c on a fresh store in dir (which must not exist or be empty)
// and removes dir afterwards.
func RunOne(ctx context.Context, c Check, open Opener, dir string) (err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	s, err := open(dir)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	// Run may close s and reopen; the store it leaves open is closed here.
	closer := &closeOnce{s: s}
	err = c.Run(ctx, closer, func(d string) (workload.Store, error) {
		s, err := open(d)
		if err != nil {
			return nil, err
		}
		closer.s, closer.closed = s, false
		return closer, nil
	}, dir)
	return errors.Join(err, closer.Close())
}

// closeOnce wraps the store under check so that a check may close it and
// reopen the directory, and RunOne still closes whatever is left open.
type closeOnce struct {
	s      workload.Store
	closed bool
}

func (c *closeOnce) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	return c.s.Append(ctx, events, cond)
}

func (c *closeOnce) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return c.s.Read(ctx, q, o)
}

func (c *closeOnce) Head() uint64 { return c.s.Head() }

func (c *closeOnce) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.s.Close()
}

// ---- vocabulary of the checks ----

func ev(typ string, tags ...string) dcb.Event { return dcb.Event{Type: typ, Tags: tags} }

func items(its ...dcb.QueryItem) dcb.Query { return dcb.Query{Items: its} }

func types(ts ...string) dcb.QueryItem { return dcb.QueryItem{Types: ts} }

func tags(ts ...string) dcb.QueryItem { return dcb.QueryItem{Tags: ts} }

func cond(q dcb.Query, after uint64) *dcb.AppendCondition {
	return &dcb.AppendCondition{FailIfEventsMatch: q, After: after}
}

func read(ctx context.Context, s workload.Store, q dcb.Query, o store.ReadOptions) ([]dcb.SequencedEvent, error) {
	var out []dcb.SequencedEvent
	for e, err := range s.Read(ctx, q, o) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

func positions(ctx context.Context, s workload.Store, q dcb.Query, o store.ReadOptions) ([]uint64, error) {
	evs, err := read(ctx, s, q, o)
	if err != nil {
		return nil, err
	}
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Position)
	}
	return out, nil
}

// expectPositions reads q with o and compares the positions read to want.
func expectPositions(ctx context.Context, s workload.Store, what string, q dcb.Query, o store.ReadOptions, want ...uint64) error {
	got, err := positions(ctx, s, q, o)
	if err != nil {
		return fmt.Errorf("%s: read: %w", what, err)
	}
	if want == nil {
		want = []uint64{}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: read positions %v, want %v", what, got, want)
	}
	return nil
}

// mustAppend appends and checks the last position returned.
func mustAppend(ctx context.Context, s workload.Store, wantLast uint64, c *dcb.AppendCondition, events ...dcb.Event) error {
	last, err := s.Append(ctx, events, c)
	if err != nil {
		return fmt.Errorf("append (want last %d): %w", wantLast, err)
	}
	if last != wantLast {
		return fmt.Errorf("append returned last %d, want %d", last, wantLast)
	}
	return nil
}

// mustFail appends and expects an error wrapping target, nothing written.
func mustFail(ctx context.Context, s workload.Store, target error, c *dcb.AppendCondition, events ...dcb.Event) error {
	before := s.Head()
	_, err := s.Append(ctx, events, c)
	if !errors.Is(err, target) {
		return fmt.Errorf("append: got error %v, want %v", err, target)
	}
	if h := s.Head(); h != before {
		return fmt.Errorf("failed append moved the head from %d to %d", before, h)
	}
	return nil
}

// seed appends one event per type/tags pair, one append each, returning the
// first error.
func seed(ctx context.Context, s workload.Store, events ...dcb.Event) error {
	for i, e := range events {
		if err := mustAppend(ctx, s, uint64(i+1), nil, e); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// the store every query check reads:
//
//	1 A  course:c1
//	2 B  course:c1 student:s1
//	3 A  course:c2 student:s1
//	4 C  student:s1
//	5 B  course:c10
var queryFixture = []dcb.Event{
	ev("A", "course:c1"),
	ev("B", "course:c1", "student:s1"),
	ev("A", "course:c2", "student:s1"),
	ev("C", "student:s1"),
	ev("B", "course:c10"),
}

var checks = []Check{
	{"positions are gap-free from 1 and events round-trip", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if h := s.Head(); h != 0 {
			return fmt.Errorf("empty store: head %d, want 0", h)
		}
		in := []dcb.Event{
			{Type: "T1", Tags: []string{"b", "a", "b"}, Data: json.RawMessage(" {\"x\": [1, 2]}\n"), Metadata: map[string]string{"correlation": "c-1"}},
			{Type: "T2", Data: json.RawMessage(`"é🦘"`)},
			{Type: "T3", Tags: []string{"z"}},
		}
		before := time.Now().UTC().Add(-time.Minute)
		if err := mustAppend(ctx, s, 3, nil, in...); err != nil {
			return err
		}
		if err := mustAppend(ctx, s, 4, nil, ev("T4")); err != nil {
			return err
		}
		if h := s.Head(); h != 4 {
			return fmt.Errorf("head %d, want 4", h)
		}
		got, err := read(ctx, s, dcb.All(), store.ReadOptions{})
		if err != nil {
			return err
		}
		want := []dcb.Event{
			{Type: "T1", Tags: []string{"b", "a"}, Data: json.RawMessage(`{"x": [1, 2]}`), Metadata: map[string]string{"correlation": "c-1"}},
			{Type: "T2", Data: json.RawMessage(`"é🦘"`)},
			{Type: "T3", Tags: []string{"z"}},
			{Type: "T4"},
		}
		if len(got) != len(want) {
			return fmt.Errorf("read %d events, want %d", len(got), len(want))
		}
		for i, g := range got {
			if g.Position != uint64(i+1) {
				return fmt.Errorf("event %d at position %d", i+1, g.Position)
			}
			w := want[i]
			if g.Type != w.Type || !slices.Equal(g.Tags, w.Tags) || string(g.Data) != string(w.Data) || fmt.Sprint(g.Metadata) != fmt.Sprint(w.Metadata) {
				return fmt.Errorf("position %d: got %+v, want %+v", g.Position, g.Event, w)
			}
			if g.Timestamp.Location() != time.UTC || g.Timestamp.Before(before) {
				return fmt.Errorf("position %d: timestamp %v is not a recent UTC time", g.Position, g.Timestamp)
			}
		}
		if !got[0].Timestamp.Equal(got[2].Timestamp) {
			return fmt.Errorf("one append, two timestamps: %v and %v", got[0].Timestamp, got[2].Timestamp)
		}
		return nil
	}},
	{"types are OR'd within an item", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, queryFixture...); err != nil {
			return err
		}
		return errors.Join(
			expectPositions(ctx, s, "A or C", items(types("A", "C")), store.ReadOptions{}, 1, 3, 4),
			expectPositions(ctx, s, "type is case-sensitive", items(types("a")), store.ReadOptions{}),
		)
	}},
	{"tags are AND'd, and with the types", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, queryFixture...); err != nil {
			return err
		}
		return errors.Join(
			expectPositions(ctx, s, "one tag", items(tags("student:s1")), store.ReadOptions{}, 2, 3, 4),
			expectPositions(ctx, s, "two tags", items(tags("student:s1", "course:c1")), store.ReadOptions{}, 2),
			expectPositions(ctx, s, "type and tag", items(dcb.QueryItem{Types: []string{"A"}, Tags: []string{"student:s1"}}), store.ReadOptions{}, 3),
			expectPositions(ctx, s, "types and tag", items(dcb.QueryItem{Types: []string{"A", "C"}, Tags: []string{"student:s1"}}), store.ReadOptions{}, 3, 4),
		)
	}},
	{"items are OR'd, each event once, in position order", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, queryFixture...); err != nil {
			return err
		}
		return errors.Join(
			expectPositions(ctx, s, "overlapping items", items(tags("student:s1"), types("B"), tags("course:c1")), store.ReadOptions{}, 1, 2, 3, 4, 5),
			expectPositions(ctx, s, "disjoint items", items(types("C"), tags("course:c2")), store.ReadOptions{}, 3, 4),
			expectPositions(ctx, s, "backwards", items(types("C"), tags("course:c1")), store.ReadOptions{Backwards: true}, 4, 2, 1),
		)
	}},
	{"tags match exactly: no prefix, no collision of awkward names", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, queryFixture...); err != nil {
			return err
		}
		awkward := []dcb.Event{ev("ab", "c"), ev("a", "bc"), ev("T", "x\x00y"), ev("T", "x"), ev("T", "🦘", "a/b", ".."), ev("T", "course:c")}
		for i, e := range awkward {
			if err := mustAppend(ctx, s, uint64(6+i), nil, e); err != nil {
				return err
			}
		}
		return errors.Join(
			expectPositions(ctx, s, "course:c1 is not course:c10", items(tags("course:c1")), store.ReadOptions{}, 1, 2),
			expectPositions(ctx, s, "course:c is no prefix", items(tags("course:c")), store.ReadOptions{}, 11),
			expectPositions(ctx, s, "type ab", items(types("ab")), store.ReadOptions{}, 6),
			expectPositions(ctx, s, "tag bc", items(tags("bc")), store.ReadOptions{}, 7),
			expectPositions(ctx, s, "tag x", items(tags("x")), store.ReadOptions{}, 9),
			expectPositions(ctx, s, "tag with NUL", items(tags("x\x00y")), store.ReadOptions{}, 8),
			expectPositions(ctx, s, "emoji and slash", items(tags("🦘", "a/b", "..")), store.ReadOptions{}, 10),
		)
	}},
	{"an item with neither types nor tags is rejected", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, ev("A", "t")); err != nil {
			return err
		}
		var errs []error
		if evs, err := read(ctx, s, items(types("A"), dcb.QueryItem{}), store.ReadOptions{}); !errors.Is(err, dcb.ErrInvalidQuery) || len(evs) != 0 {
			errs = append(errs, fmt.Errorf("read with an empty item: %d events, error %v; want none and %v", len(evs), err, dcb.ErrInvalidQuery))
		}
		errs = append(errs, mustFail(ctx, s, dcb.ErrInvalidQuery, cond(items(dcb.QueryItem{}), 0), ev("B")))
		return errors.Join(errs...)
	}},
	{"an empty batch or an invalid event is rejected, nothing written", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		return errors.Join(
			mustFail(ctx, s, dcb.ErrInvalidEvent, nil),
			mustFail(ctx, s, dcb.ErrInvalidEvent, nil, ev("A"), ev("")),
			mustFail(ctx, s, dcb.ErrInvalidEvent, nil, ev("A", "")),
			mustFail(ctx, s, dcb.ErrInvalidEvent, nil, dcb.Event{Type: "A", Data: json.RawMessage(`{`)}),
			mustAppend(ctx, s, 1, nil, ev("A")),
		)
	}},
	{"a condition counts only events after After", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, ev("A", "k"), ev("B"), ev("A", "k"), ev("B")); err != nil {
			return err
		}
		q := items(tags("k"))
		return errors.Join(
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(q, 0), ev("C")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(q, 2), ev("C")),
			mustAppend(ctx, s, 5, cond(q, 3), ev("C")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(items(types("B")), 3), ev("C")),
			mustAppend(ctx, s, 6, cond(items(types("B")), 4), ev("C")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(items(types("Z"), tags("k")), 1), ev("C")),
			mustAppend(ctx, s, 7, cond(items(dcb.QueryItem{Types: []string{"B"}, Tags: []string{"k"}}), 0), ev("C")),
		)
	}},
	{"After beyond the head is fine", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, ev("A", "k")); err != nil {
			return err
		}
		return errors.Join(
			mustAppend(ctx, s, 2, cond(items(tags("k")), 100), ev("A", "k")),
			mustAppend(ctx, s, 3, cond(dcb.All(), 1000), ev("A", "k")),
		)
	}},
	{"a condition on All fails when any event follows After", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		return errors.Join(
			mustAppend(ctx, s, 1, cond(dcb.All(), 0), ev("A")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(dcb.All(), 0), ev("A")),
			mustAppend(ctx, s, 2, cond(dcb.All(), 1), ev("A")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(dcb.All(), 1), ev("A")),
		)
	}},
	{"a batch is never checked against itself", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		q := items(tags("k"), types("A"))
		return errors.Join(
			mustAppend(ctx, s, 3, cond(q, 0), ev("A"), ev("B", "k"), ev("A", "k")),
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(q, 0), ev("C")),
			mustAppend(ctx, s, 5, cond(q, 3), ev("A", "k"), ev("A", "k")),
		)
	}},
	{"a failed append writes nothing and consumes no position", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, ev("A", "k")); err != nil {
			return err
		}
		return errors.Join(
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(items(tags("k")), 0), ev("Lost", "lost"), ev("Lost")),
			mustAppend(ctx, s, 2, nil, ev("B")),
			expectPositions(ctx, s, "nothing of the failed append", items(types("Lost"), tags("lost")), store.ReadOptions{}),
			expectPositions(ctx, s, "gap-free", dcb.All(), store.ReadOptions{}, 1, 2),
		)
	}},
	{"read options: From, Limit, Backwards", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, queryFixture...); err != nil {
			return err
		}
		s1 := items(tags("student:s1"))
		return errors.Join(
			expectPositions(ctx, s, "From is inclusive", dcb.All(), store.ReadOptions{From: 3}, 3, 4, 5),
			expectPositions(ctx, s, "From filtered", s1, store.ReadOptions{From: 3}, 3, 4),
			expectPositions(ctx, s, "From beyond head", dcb.All(), store.ReadOptions{From: 6}),
			expectPositions(ctx, s, "Limit counts matches", s1, store.ReadOptions{Limit: 2}, 2, 3),
			expectPositions(ctx, s, "Backwards", dcb.All(), store.ReadOptions{Backwards: true}, 5, 4, 3, 2, 1),
			expectPositions(ctx, s, "Backwards From Limit", s1, store.ReadOptions{Backwards: true, From: 3, Limit: 1}, 3),
			expectPositions(ctx, s, "Backwards From beyond head", items(types("B")), store.ReadOptions{Backwards: true, From: 99}, 5, 2),
			expectPositions(ctx, s, "newest of a type", items(types("A")), store.ReadOptions{Backwards: true, Limit: 1}, 3),
		)
	}},
	{"events survive a reopen and positions continue", func(ctx context.Context, s workload.Store, open Opener, dir string) error {
		if err := seed(ctx, s, ev("A", "k"), ev("B", "k")); err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		s, err := open(dir)
		if err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		if h := s.Head(); h != 2 {
			return fmt.Errorf("reopened head %d, want 2", h)
		}
		return errors.Join(
			mustFail(ctx, s, dcb.ErrAppendConditionFailed, cond(items(types("B")), 1), ev("C")),
			mustAppend(ctx, s, 3, cond(items(types("B")), 2), ev("C", "k")),
			expectPositions(ctx, s, "after reopen", items(tags("k")), store.ReadOptions{}, 1, 2, 3),
		)
	}},
	{"of 20 appends racing on one condition exactly one wins", func(ctx context.Context, s workload.Store, _ Opener, _ string) error {
		if err := seed(ctx, s, ev("Other", "other")); err != nil {
			return err
		}
		const racers = 20
		c := cond(items(tags("seat:1")), s.Head())
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				_, errs[i] = s.Append(ctx, []dcb.Event{ev("SeatTaken", "seat:1", fmt.Sprintf("by:%d", i))}, c)
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, dcb.ErrAppendConditionFailed):
				return fmt.Errorf("racer %d: %w", i, err)
			}
		}
		if won != 1 {
			return fmt.Errorf("%d of %d racers won, want exactly 1", won, racers)
		}
		return errors.Join(
			expectPositions(ctx, s, "one seat taken", items(tags("seat:1")), store.ReadOptions{}, 2),
			expectPositions(ctx, s, "gap-free", dcb.All(), store.ReadOptions{}, 1, 2),
		)
	}},
}
