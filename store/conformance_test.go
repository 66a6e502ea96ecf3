package store_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ---- helpers ----

// open opens a store in dir and closes it when the test ends.
func open(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// closeProjected waits until the projection holds every event, then closes
// s: Close itself does not wait for the projection backlog.
func closeProjected(t require.TestingT, s *store.Store) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	require.NoError(t, s.WaitProjected(context.Background(), s.Head()))
	require.NoError(t, s.Close())
}

// reopen closes s and opens its directory again.
func reopen(t testing.TB, s *store.Store) *store.Store {
	t.Helper()
	require.NoError(t, s.Close())
	return open(t, s.Dir())
}

// read drains a Read, returning its events and the error of the last pair.
func read(s store.Events, ctx context.Context, q dcb.Query, o store.ReadOptions) ([]dcb.SequencedEvent, error) {
	var out []dcb.SequencedEvent
	for e, err := range s.Read(ctx, q, o) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// readAll reads and requires success.
func readAll(t testing.TB, s store.Events, q dcb.Query, o store.ReadOptions) []dcb.SequencedEvent {
	t.Helper()
	evs, err := read(s, context.Background(), q, o)
	require.NoError(t, err)
	return evs
}

func positions(evs []dcb.SequencedEvent) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Position)
	}
	return out
}

func readPositions(t testing.TB, s *store.Store, q dcb.Query, o store.ReadOptions) []uint64 {
	t.Helper()
	return positions(readAll(t, s, q, o))
}

// content returns e without its timestamp: the events the tests append
// carry none, the store sets it.
func content(e dcb.Event) dcb.Event {
	e.Timestamp = time.Time{}
	return e
}

func appendOK(t testing.TB, s *store.Store, events ...dcb.Event) uint64 {
	t.Helper()
	last, err := s.Append(context.Background(), events, nil)
	require.NoError(t, err)
	return last
}

func ev(typ string, tags ...string) dcb.Event { return dcb.Event{Type: typ, Tags: tags} }

func item(types []string, tags ...string) dcb.QueryItem {
	return dcb.QueryItem{Types: types, Tags: tags}
}

func query(items ...dcb.QueryItem) dcb.Query { return dcb.Query{Items: items} }

func tagQuery(tags ...string) dcb.Query { return query(item(nil, tags...)) }

func typeQuery(types ...string) dcb.Query { return query(item(types)) }

func seq(lo, hi uint64) []uint64 {
	var out []uint64
	for p := lo; p <= hi; p++ {
		out = append(out, p)
	}
	return out
}

func reversed(ps []uint64) []uint64 {
	out := slices.Clone(ps)
	slices.Reverse(out)
	return out
}

// ---- query matching ----

// matchFixture:
//
//	pos type tags
//	1   A    x
//	2   B    x y
//	3   C    y
//	4   A    x y z
//	5   B
//	6   C    z
func matchFixture() []dcb.Event {
	return []dcb.Event{ev("A", "x"), ev("B", "x", "y"), ev("C", "y"), ev("A", "x", "y", "z"), ev("B"), ev("C", "z")}
}

func TestConformance(t *testing.T) {
	ctx := context.Background()

	t.Run("query matching", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		fixture := matchFixture()
		appendOK(t, s, fixture[:3]...)
		appendOK(t, s, fixture[3:]...)
		cases := []struct {
			name string
			q    dcb.Query
			want []uint64
		}{
			{"types OR'd within an item", typeQuery("A", "B"), []uint64{1, 2, 4, 5}},
			{"tags AND'd within an item", tagQuery("x", "y"), []uint64{2, 4}},
			{"three tags AND'd", tagQuery("z", "y", "x"), []uint64{4}},
			{"types AND tags", query(item([]string{"A"}, "y")), []uint64{4}},
			{"types OR'd AND tags AND'd", query(item([]string{"A", "B"}, "x", "y")), []uint64{2, 4}},
			{"items OR'd", query(item([]string{"C"}), item(nil, "z")), []uint64{3, 4, 6}},
			{"event matching several items returned once", query(item(nil, "x"), item(nil, "y"), item([]string{"A"})), []uint64{1, 2, 3, 4}},
			{"identical items", query(item(nil, "z"), item(nil, "z")), []uint64{4, 6}},
			{"results in position order whatever the item order", query(item([]string{"C"}), item([]string{"B"}), item([]string{"A"})), seq(1, 6)},
			{"unknown type", typeQuery("D"), nil},
			{"unknown tag", tagQuery("w"), nil},
			{"known and unknown tag", tagQuery("x", "w"), nil},
			{"unknown item OR known item", query(item(nil, "w"), item([]string{"B"})), []uint64{2, 5}},
			{"type is case-sensitive", typeQuery("a"), nil},
			{"tag is case-sensitive", tagQuery("X"), nil},
		}
		all := readAll(t, s, dcb.All(), store.ReadOptions{})
		require.Len(t, all, 6)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var model []uint64
				for _, e := range all {
					if tc.q.Matches(e.Event) {
						model = append(model, e.Position)
					}
				}
				require.Equal(t, model, tc.want, "the table agrees with dcb.Query.Matches")
				assert.Equal(t, tc.want, readPositions(t, s, tc.q, store.ReadOptions{}), "forwards")
				assert.Equal(t, reversed(tc.want), readPositions(t, s, tc.q, store.ReadOptions{Backwards: true}), "backwards")
			})
		}
	})

	t.Run("exact matching of awkward tags", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("t", 10<<10)
		tags := []string{
			"a/b", "a_b", "a\\b", "a%2Fb", "a%2fb", "a:b", "..", ".", "...", ":", "/", "\\",
			"a b", "a  b", " a", "a ", "A", "a", "é", "e\u0301", "🦘", "🦘🦘", "日本語",
			"a\x00b", "a\tb", "a\nb", "CON", "con", "tag.json", "~",
			long, long[:len(long)-1] + "u", long + "t",
			"course:c1", "course:c10", "course:c", "course:", "course",
		}
		require.Len(t, slices.Compact(slices.Sorted(slices.Values(tags))), len(tags), "tags are distinct")
		s := open(t, t.TempDir())
		for _, tag := range tags {
			appendOK(t, s, ev("T", tag))
		}
		check := func(t *testing.T, s *store.Store) {
			for i, tag := range tags {
				got := readAll(t, s, tagQuery(tag), store.ReadOptions{})
				if assert.Len(t, got, 1, "tag %q", tag) {
					assert.Equal(t, uint64(i+1), got[0].Position, "tag %q", tag)
					assert.Equal(t, []string{tag}, got[0].Tags, "tag %q comes back byte for byte", tag)
				}
			}
			// No prefix matching: course:c1 is not course:c10.
			assert.Equal(t, []uint64{uint64(slices.Index(tags, "course:c1") + 1)}, readPositions(t, s, tagQuery("course:c1"), store.ReadOptions{}))
			assert.Empty(t, readPositions(t, s, tagQuery("course:c2"), store.ReadOptions{}))
			assert.Empty(t, readPositions(t, s, tagQuery("cours"), store.ReadOptions{}))
			assert.Empty(t, readPositions(t, s, tagQuery("a/"), store.ReadOptions{}))
		}
		t.Run("open", func(t *testing.T) { check(t, s) })
		s = reopen(t, s)
		t.Run("reopened", func(t *testing.T) { check(t, s) })
	})

	t.Run("exact matching of types", func(t *testing.T) {
		t.Parallel()
		types := []string{"Course", "CourseDefined", "course", "Course ", "Course/Defined", "Course_Defined", "🦘", "a\\b"}
		s := open(t, t.TempDir())
		for _, typ := range types {
			appendOK(t, s, ev(typ))
		}
		for i, typ := range types {
			got := readAll(t, s, typeQuery(typ), store.ReadOptions{})
			if assert.Len(t, got, 1, "type %q", typ) {
				assert.Equal(t, uint64(i+1), got[0].Position)
				assert.Equal(t, typ, got[0].Type)
			}
		}
	})

	t.Run("All returns everything", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		assert.Empty(t, readAll(t, s, dcb.All(), store.ReadOptions{}), "empty store")
		appendOK(t, s, matchFixture()...)
		appendOK(t, s, ev("D"))
		assert.Equal(t, seq(1, 7), readPositions(t, s, dcb.All(), store.ReadOptions{}))
		assert.Equal(t, seq(1, 7), readPositions(t, s, dcb.Query{Items: []dcb.QueryItem{}}, store.ReadOptions{}), "no items")
		assert.Equal(t, reversed(seq(1, 7)), readPositions(t, s, dcb.All(), store.ReadOptions{Backwards: true}))
	})

	t.Run("item with neither types nor tags is invalid", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		appendOK(t, s, ev("A", "x"))
		invalid := map[string]dcb.Query{
			"only item empty":       query(dcb.QueryItem{}),
			"empty slices":          query(dcb.QueryItem{Types: []string{}, Tags: []string{}}),
			"second item empty":     query(item([]string{"A"}), dcb.QueryItem{}),
			"empty beside tag item": query(dcb.QueryItem{}, item(nil, "x")),
		}
		for name, q := range invalid {
			t.Run(name, func(t *testing.T) {
				t.Run("Read", func(t *testing.T) {
					evs, err := read(s, ctx, q, store.ReadOptions{})
					assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
					assert.Empty(t, evs, "nothing read")
					evs, err = read(s, ctx, q, store.ReadOptions{Backwards: true, Limit: 1})
					assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
					assert.Empty(t, evs, "nothing read")
				})
				t.Run("Subscribe", func(t *testing.T) {
					sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					n := 0
					var last error
					for _, err := range s.Subscribe(sctx, q, 0) {
						n++
						last = err
						if err == nil {
							break
						}
					}
					assert.Equal(t, 1, n, "one pair")
					assert.ErrorIs(t, last, dcb.ErrInvalidQuery)
				})
				t.Run("append condition", func(t *testing.T) {
					head := s.Head()
					_, err := s.Append(ctx, []dcb.Event{ev("B", "y")}, &dcb.AppendCondition{FailIfEventsMatch: q})
					assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
					assert.NotErrorIs(t, err, dcb.ErrAppendConditionFailed)
					assert.Equal(t, head, s.Head(), "nothing written")
					assert.Equal(t, seq(1, head), readPositions(t, s, dcb.All(), store.ReadOptions{}))
				})
			})
		}
		// Other invalid queries: empty or non-UTF-8 names.
		for name, q := range map[string]dcb.Query{
			"empty tag":   tagQuery(""),
			"empty type":  typeQuery(""),
			"invalid tag": tagQuery("\xff"),
		} {
			t.Run(name, func(t *testing.T) {
				_, err := read(s, ctx, q, store.ReadOptions{})
				assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
				_, err = s.Append(ctx, []dcb.Event{ev("B")}, &dcb.AppendCondition{FailIfEventsMatch: q})
				assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
				assert.Equal(t, uint64(1), s.Head())
			})
		}
	})

	t.Run("read options", func(t *testing.T) {
		t.Parallel()
		// Ten events: type A at odd positions, B at even; tag mod3:<p%3>.
		s := open(t, t.TempDir())
		for p := 1; p <= 10; p++ {
			typ := "A"
			if p%2 == 0 {
				typ = "B"
			}
			appendOK(t, s, ev(typ, "mod3:"+string(rune('0'+p%3))))
		}
		mod01 := query(item(nil, "mod3:0"), item(nil, "mod3:1")) // 1 3 4 6 7 9 10
		cases := []struct {
			name string
			q    dcb.Query
			o    store.ReadOptions
			want []uint64
		}{
			{"From 0 forwards is the start", dcb.All(), store.ReadOptions{}, seq(1, 10)},
			{"From 0 backwards is the end", dcb.All(), store.ReadOptions{Backwards: true}, reversed(seq(1, 10))},
			{"From inclusive forwards", dcb.All(), store.ReadOptions{From: 4}, seq(4, 10)},
			{"From inclusive backwards", dcb.All(), store.ReadOptions{From: 4, Backwards: true}, []uint64{4, 3, 2, 1}},
			{"From 1 forwards", dcb.All(), store.ReadOptions{From: 1}, seq(1, 10)},
			{"From 1 backwards", dcb.All(), store.ReadOptions{From: 1, Backwards: true}, []uint64{1}},
			{"From head forwards", dcb.All(), store.ReadOptions{From: 10}, []uint64{10}},
			{"From head backwards", dcb.All(), store.ReadOptions{From: 10, Backwards: true}, reversed(seq(1, 10))},
			{"From inclusive on a match", typeQuery("B"), store.ReadOptions{From: 4}, []uint64{4, 6, 8, 10}},
			{"From inclusive on a match backwards", typeQuery("B"), store.ReadOptions{From: 4, Backwards: true}, []uint64{4, 2}},
			{"From between matches", typeQuery("B"), store.ReadOptions{From: 5}, []uint64{6, 8, 10}},
			{"From between matches backwards", typeQuery("B"), store.ReadOptions{From: 5, Backwards: true}, []uint64{4, 2}},
			{"From beyond head forwards", dcb.All(), store.ReadOptions{From: 11}, nil},
			{"From far beyond head forwards", typeQuery("A"), store.ReadOptions{From: math.MaxUint64}, nil},
			{"From beyond head backwards", dcb.All(), store.ReadOptions{From: 11, Backwards: true}, reversed(seq(1, 10))},
			{"From far beyond head backwards", typeQuery("A"), store.ReadOptions{From: math.MaxUint64, Backwards: true}, []uint64{9, 7, 5, 3, 1}},
			{"Limit", dcb.All(), store.ReadOptions{Limit: 3}, []uint64{1, 2, 3}},
			{"Limit after filtering", typeQuery("B"), store.ReadOptions{Limit: 2}, []uint64{2, 4}},
			{"Limit across items", mod01, store.ReadOptions{Limit: 4}, []uint64{1, 3, 4, 6}},
			{"Limit across items backwards", mod01, store.ReadOptions{Limit: 3, Backwards: true}, []uint64{10, 9, 7}},
			{"Limit with Backwards", typeQuery("A"), store.ReadOptions{Limit: 2, Backwards: true}, []uint64{9, 7}},
			{"Limit 1 Backwards: the last match", typeQuery("B"), store.ReadOptions{Limit: 1, Backwards: true}, []uint64{10}},
			{"Limit with From", typeQuery("B"), store.ReadOptions{From: 5, Limit: 2}, []uint64{6, 8}},
			{"Limit with From backwards", typeQuery("B"), store.ReadOptions{From: 7, Limit: 2, Backwards: true}, []uint64{6, 4}},
			{"Limit with From across items", mod01, store.ReadOptions{From: 5, Limit: 3}, []uint64{6, 7, 9}},
			{"Limit beyond matches", typeQuery("B"), store.ReadOptions{Limit: 100}, []uint64{2, 4, 6, 8, 10}},
			{"Limit exactly the matches", typeQuery("B"), store.ReadOptions{Limit: 5, Backwards: true}, []uint64{10, 8, 6, 4, 2}},
			{"Limit with no match", typeQuery("C"), store.ReadOptions{Limit: 1}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				assert.Equal(t, tc.want, readPositions(t, s, tc.q, tc.o))
			})
		}
		t.Run("negative Limit is an error", func(t *testing.T) {
			for _, o := range []store.ReadOptions{{Limit: -1}, {Limit: -5, Backwards: true}} {
				evs, err := read(s, ctx, dcb.All(), o)
				assert.Error(t, err)
				assert.Empty(t, evs)
			}
		})
		t.Run("stopping early", func(t *testing.T) {
			n := 0
			for _, err := range s.Read(ctx, dcb.All(), store.ReadOptions{}) {
				require.NoError(t, err)
				n++
				if n == 3 {
					break
				}
			}
			assert.Equal(t, 3, n)
		})
	})

	t.Run("empty store", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		assert.Equal(t, uint64(0), s.Head())
		for _, o := range []store.ReadOptions{{}, {Backwards: true}, {From: 1}, {From: 5, Backwards: true}, {Limit: 1}} {
			assert.Empty(t, readAll(t, s, dcb.All(), o))
			assert.Empty(t, readAll(t, s, tagQuery("x"), o))
		}
	})

	t.Run("conditions", func(t *testing.T) {
		t.Parallel()
		cond := func(q dcb.Query, after uint64) *dcb.AppendCondition {
			return &dcb.AppendCondition{FailIfEventsMatch: q, After: after}
		}
		// A store of three events: x at 1 and 3, y at 2.
		setup := func(t *testing.T) *store.Store {
			s := open(t, t.TempDir())
			appendOK(t, s, ev("A", "x"), ev("B", "y"))
			appendOK(t, s, ev("A", "x"))
			return s
		}
		cases := []struct {
			name string
			cond *dcb.AppendCondition
			fail bool
		}{
			{"nil condition", nil, false},
			{"After exclusive: an event at exactly After does not fail", cond(tagQuery("x"), 3), false},
			{"an event after After fails", cond(tagQuery("x"), 2), true},
			{"After 0 counts every event", cond(tagQuery("y"), 0), true},
			{"no match after After", cond(tagQuery("y"), 2), false},
			{"no match at all", cond(tagQuery("z"), 0), false},
			{"type condition", cond(typeQuery("B"), 1), true},
			{"type condition at After", cond(typeQuery("B"), 2), false},
			{"types AND tags", cond(query(item([]string{"B"}, "x")), 0), false},
			{"items OR'd", cond(query(item(nil, "z"), item([]string{"B"})), 1), true},
			{"After at head", cond(tagQuery("x"), 3), false},
			{"After beyond head", cond(tagQuery("x"), 4), false},
			{"After far beyond head", cond(tagQuery("x"), 1000), false},
			{"All fails when an event exists after After", cond(dcb.All(), 2), true},
			{"All with After 0 on a non-empty store", cond(dcb.All(), 0), true},
			{"All with After at head", cond(dcb.All(), 3), false},
			{"All with After beyond head", cond(dcb.All(), 10), false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s := setup(t)
				last, err := s.Append(ctx, []dcb.Event{ev("N", "x", "y")}, tc.cond)
				if tc.fail {
					assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
					assert.NotErrorIs(t, err, dcb.ErrInvalidEvent)
					assert.Zero(t, last)
					assert.Equal(t, uint64(3), s.Head(), "a failed append writes nothing")
					assert.Equal(t, seq(1, 3), readPositions(t, s, dcb.All(), store.ReadOptions{}))
				} else {
					assert.NoError(t, err)
					assert.Equal(t, uint64(4), last)
					assert.Equal(t, uint64(4), s.Head())
				}
			})
		}
		t.Run("After MaxUint64", func(t *testing.T) {
			// After beyond head is fine, up to the largest position.
			s := setup(t)
			for _, q := range []dcb.Query{dcb.All(), tagQuery("x")} {
				_, err := s.Append(ctx, []dcb.Event{ev("N")}, cond(q, math.MaxUint64))
				assert.NoError(t, err, "After MaxUint64, query %+v", q)
			}
		})
		t.Run("All on an empty store", func(t *testing.T) {
			s := open(t, t.TempDir())
			last, err := s.Append(ctx, []dcb.Event{ev("A")}, cond(dcb.All(), 0))
			require.NoError(t, err)
			assert.Equal(t, uint64(1), last)
			_, err = s.Append(ctx, []dcb.Event{ev("A")}, cond(dcb.All(), 0))
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
			last, err = s.Append(ctx, []dcb.Event{ev("A")}, cond(dcb.All(), 1))
			require.NoError(t, err)
			assert.Equal(t, uint64(2), last)
		})
		t.Run("a batch is never checked against itself", func(t *testing.T) {
			s := open(t, t.TempDir())
			batch := []dcb.Event{ev("A", "x"), ev("A", "x"), ev("B", "x")}
			last, err := s.Append(ctx, batch, cond(tagQuery("x"), 0))
			require.NoError(t, err, "empty store")
			assert.Equal(t, uint64(3), last)
			last, err = s.Append(ctx, batch, cond(tagQuery("x"), 3))
			require.NoError(t, err, "non-empty store, After at head")
			assert.Equal(t, uint64(6), last)
			last, err = s.Append(ctx, batch, cond(dcb.All(), 6))
			require.NoError(t, err, "All")
			assert.Equal(t, uint64(9), last)
			_, err = s.Append(ctx, batch, cond(tagQuery("x"), 8))
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "but earlier batches count")
		})
		t.Run("a failed append consumes no position", func(t *testing.T) {
			s := setup(t)
			for range 3 {
				_, err := s.Append(ctx, []dcb.Event{ev("N"), ev("N")}, cond(tagQuery("x"), 0))
				require.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
				require.Equal(t, uint64(3), s.Head())
			}
			last := appendOK(t, s, ev("N"))
			assert.Equal(t, uint64(4), last, "the next success gets Head+1")
			assert.Equal(t, seq(1, 4), readPositions(t, s, dcb.All(), store.ReadOptions{}), "gap-free")
			s = reopen(t, s)
			assert.Equal(t, seq(1, 4), readPositions(t, s, dcb.All(), store.ReadOptions{}), "gap-free after reopen")
			assert.Equal(t, uint64(5), appendOK(t, s, ev("N")))
		})
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		appendOK(t, s, ev("A", "x"))
		before := readAll(t, s, dcb.All(), store.ReadOptions{})
		passing := &dcb.AppendCondition{FailIfEventsMatch: tagQuery("never"), After: 0}
		cases := []struct {
			name   string
			events []dcb.Event
		}{
			{"nil batch", nil},
			{"empty batch", []dcb.Event{}},
			{"empty type", []dcb.Event{{Type: ""}}},
			{"empty type with tags", []dcb.Event{{Type: "", Tags: []string{"x"}}}},
			{"invalid UTF-8 type", []dcb.Event{{Type: "A\xff"}}},
			{"empty tag", []dcb.Event{ev("A", "")}},
			{"empty tag after a good one", []dcb.Event{ev("A", "x", "")}},
			{"invalid UTF-8 tag", []dcb.Event{ev("A", "\xff\xfe")}},
			{"truncated UTF-8 tag", []dcb.Event{ev("A", "é"[:1])}},
			{"invalid JSON data", []dcb.Event{{Type: "A", Data: json.RawMessage(`{"a":`)}}},
			{"non-JSON data", []dcb.Event{{Type: "A", Data: json.RawMessage(`hello`)}}},
			{"two JSON values", []dcb.Event{{Type: "A", Data: json.RawMessage(`{} {}`)}}},
			{"invalid UTF-8 metadata", []dcb.Event{{Type: "A", Metadata: map[string]string{"k": "\xff"}}}},
			{"one bad event spoils the batch", []dcb.Event{ev("A", "y"), ev("B", "y"), {Type: ""}}},
			{"bad event first", []dcb.Event{{Type: "A", Data: json.RawMessage(`[`)}, ev("B", "y")}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, c := range []*dcb.AppendCondition{nil, passing} {
					last, err := s.Append(ctx, tc.events, c)
					assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
					assert.NotErrorIs(t, err, dcb.ErrAppendConditionFailed)
					assert.Zero(t, last)
					assert.Equal(t, uint64(1), s.Head(), "nothing written")
				}
			})
		}
		assert.Equal(t, before, readAll(t, s, dcb.All(), store.ReadOptions{}), "Read returns nothing new")
		assert.Empty(t, readAll(t, s, tagQuery("y"), store.ReadOptions{}), "no event of a rejected batch")
		s = reopen(t, s)
		assert.Equal(t, uint64(1), s.Head(), "after reopen")
		assert.Equal(t, before, readAll(t, s, dcb.All(), store.ReadOptions{}), "after reopen")
		assert.Equal(t, uint64(2), appendOK(t, s, ev("A")), "no position consumed")
	})

	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		data := json.RawMessage("{ \"k\" : [1, 2.50, \"x\\u00e9\"],\n\t\"z\":null }")
		batch := []dcb.Event{
			{
				Type:     "RoundTrip",
				Tags:     []string{"b", "a", "b", "c", "a", "🦘"},
				Data:     data,
				Metadata: map[string]string{"correlation": "c-1", "causation": "", "user": "ü", "": "empty key"},
			},
			{Type: "Bare"},
			{Type: "Scalar", Data: json.RawMessage(`42`), Tags: []string{"a"}},
		}
		t0 := time.Now()
		last, err := s.Append(ctx, batch, nil)
		t1 := time.Now()
		require.NoError(t, err)
		require.Equal(t, uint64(3), last)
		check := func(t *testing.T, got []dcb.SequencedEvent) {
			require.Len(t, got, 3)
			for i, e := range got {
				assert.Equal(t, uint64(i+1), e.Position)
				assert.Equal(t, batch[i].Type, e.Type)
				assert.Equal(t, time.UTC, e.Timestamp.Location(), "UTC")
				assert.False(t, e.Timestamp.IsZero())
				assert.True(t, e.Timestamp.Equal(got[0].Timestamp), "one timestamp per batch")
				assert.False(t, e.Timestamp.Before(t0.Round(0)), "timestamp %v not before %v", e.Timestamp, t0)
				assert.False(t, e.Timestamp.After(t1.Round(0)), "timestamp %v not after %v", e.Timestamp, t1)
			}
			assert.Equal(t, []byte(data), []byte(got[0].Data), "data byte for byte")
			assert.Equal(t, []string{"b", "a", "c", "🦘"}, got[0].Tags, "duplicates dropped, order kept")
			assert.Equal(t, batch[0].Metadata, got[0].Metadata)
			assert.Empty(t, got[1].Tags)
			assert.Empty(t, got[1].Data)
			assert.Empty(t, got[1].Metadata)
			assert.Equal(t, []byte(`42`), []byte(got[2].Data))
			assert.Equal(t, []string{"a"}, got[2].Tags)
		}
		got := readAll(t, s, dcb.All(), store.ReadOptions{})
		check(t, got)
		// The caller's slices were not touched.
		assert.Equal(t, []string{"b", "a", "b", "c", "a", "🦘"}, batch[0].Tags)
		// A later append gets a later (or equal) timestamp.
		appendOK(t, s, ev("Later"))
		later := readAll(t, s, dcb.All(), store.ReadOptions{From: 4})
		require.Len(t, later, 1)
		assert.False(t, later[0].Timestamp.Before(got[0].Timestamp))
		// Queried by a deduplicated tag, the event comes once.
		assert.Equal(t, []uint64{1, 3}, readPositions(t, s, tagQuery("a"), store.ReadOptions{}))
		s = reopen(t, s)
		again := readAll(t, s, dcb.All(), store.ReadOptions{})
		require.Len(t, again, 4)
		check(t, again[:3])
		assert.Equal(t, append(got, later...), again, "equal after reopen")
		for i := range again {
			assert.True(t, again[i].Timestamp.Equal(append(got, later...)[i].Timestamp))
		}
	})

	t.Run("reopen keeps everything", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := open(t, dir)
		for i := range 20 {
			batch := make([]dcb.Event, 1+i%4)
			for j := range batch {
				batch[j] = dcb.Event{
					Type:     []string{"A", "B", "C"}[(i+j)%3],
					Tags:     []string{"i:" + string(rune('a'+i)), "j:" + string(rune('a'+j))},
					Data:     json.RawMessage(`{"i":` + string(rune('0'+i%10)) + `}`),
					Metadata: map[string]string{"n": string(rune('a' + j))},
				}
			}
			appendOK(t, s, batch...)
		}
		head := s.Head()
		before := readAll(t, s, dcb.All(), store.ReadOptions{})
		require.Len(t, before, int(head))
		byTag := readPositions(t, s, tagQuery("j:b"), store.ReadOptions{})
		byType := readPositions(t, s, typeQuery("C"), store.ReadOptions{Backwards: true})
		for range 2 {
			s = reopen(t, s)
			assert.Equal(t, head, s.Head())
			assert.Equal(t, before, readAll(t, s, dcb.All(), store.ReadOptions{}))
			assert.Equal(t, byTag, readPositions(t, s, tagQuery("j:b"), store.ReadOptions{}), "tag index rebuilt")
			assert.Equal(t, byType, readPositions(t, s, typeQuery("C"), store.ReadOptions{Backwards: true}), "type index rebuilt")
		}
		// Conditions see the reopened events too.
		_, err := s.Append(ctx, []dcb.Event{ev("A")}, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("i:t"), After: head - 1})
		assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
		assert.Equal(t, head+1, appendOK(t, s, ev("A")))
	})

	t.Run("second writer refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		require.NoError(t, err)
		for range 2 {
			s2, err := store.Open(dir, nil)
			assert.Nil(t, s2)
			require.ErrorIs(t, err, store.ErrLocked)
			assert.Contains(t, err.Error(), dir, "the error names the directory")
		}
		// The refused Open did not disturb the first writer.
		appendOK(t, s, ev("A"))
		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "Close is idempotent")
		s = open(t, dir)
		assert.Equal(t, uint64(1), s.Head())
		appendOK(t, s, ev("A"))
	})

	t.Run("second writer in another process refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		require.NoError(t, err)
		// The child cannot open while this process holds the store.
		out, code := runHelper(t, dir, "open")
		assert.Equal(t, helperExitLocked, code, "child output: %s", out)
		assert.Contains(t, out, dir, "the child's error names the directory")
		require.NoError(t, s.Close())
		// Once closed, the child can.
		out, code = runHelper(t, dir, "open")
		assert.Equal(t, 0, code, "child output: %s", out)
	})

	t.Run("writer in another process holds the lock", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cmd := helperCommand(dir, "hold")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err, "child stderr: %s", stderr.String())
		require.Equal(t, "ready\n", line)

		s, err := store.Open(dir, nil)
		assert.Nil(t, s)
		require.ErrorIs(t, err, store.ErrLocked)
		assert.Contains(t, err.Error(), dir)

		require.NoError(t, stdin.Close()) // the child closes its store and exits
		_, _ = io.Copy(io.Discard, stdout)
		require.NoError(t, cmd.Wait(), "child stderr: %s", stderr.String())

		s = open(t, dir)
		assert.Equal(t, uint64(1), s.Head(), "the child's append is there")
		assert.Equal(t, uint64(2), appendOK(t, s, ev("Parent")))
	})

	t.Run("context", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		appendOK(t, s, ev("A", "x"), ev("B", "x"))
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		t.Run("Append with a cancelled context", func(t *testing.T) {
			for _, c := range []*dcb.AppendCondition{nil, {FailIfEventsMatch: tagQuery("never")}} {
				last, err := s.Append(cancelled, []dcb.Event{ev("C", "y")}, c)
				assert.ErrorIs(t, err, context.Canceled)
				assert.Zero(t, last)
				assert.Equal(t, uint64(2), s.Head(), "nothing written")
				assert.Empty(t, readAll(t, s, tagQuery("y"), store.ReadOptions{}))
			}
		})
		t.Run("Read with a cancelled context", func(t *testing.T) {
			for _, o := range []store.ReadOptions{{}, {Backwards: true}, {Limit: 1}} {
				evs, err := read(s, cancelled, dcb.All(), o)
				assert.ErrorIs(t, err, context.Canceled, "%+v", o)
				assert.Empty(t, evs)
				evs, err = read(s, cancelled, tagQuery("x"), o)
				assert.ErrorIs(t, err, context.Canceled, "%+v", o)
				assert.Empty(t, evs)
			}
		})
		t.Run("Read with a cancelled context that matches nothing", func(t *testing.T) {
			// Read documents that an ended context is yielded as the error
			// of the last pair, whether or not any event matches.
			_, err := read(s, cancelled, tagQuery("nothing"), store.ReadOptions{})
			assert.ErrorIs(t, err, context.Canceled, "no match")
			_, err = read(s, cancelled, dcb.All(), store.ReadOptions{From: 10})
			assert.ErrorIs(t, err, context.Canceled, "beyond head")
		})
		t.Run("Subscribe with a cancelled context", func(t *testing.T) {
			var last error
			n := 0
			for _, err := range s.Subscribe(cancelled, dcb.All(), 0) {
				last = err
				if n++; n > 10 {
					break
				}
			}
			assert.ErrorIs(t, last, context.Canceled)
		})
		s = reopen(t, s)
		assert.Equal(t, uint64(2), s.Head(), "nothing written, after reopen")
	})

	t.Run("subscribe", func(t *testing.T) {
		t.Parallel()
		t.Run("catches up then follows", func(t *testing.T) {
			s := open(t, t.TempDir())
			appendOK(t, s, ev("A", "x"), ev("A", "y"))
			appendOK(t, s, ev("B", "x"))
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second) // a safety net, not a synchronisation
			defer cancel()
			caughtUp := make(chan struct{})
			appended := make(chan error, 1)
			go func() {
				<-caughtUp
				if _, err := s.Append(ctx, []dcb.Event{ev("C", "y")}, nil); err != nil { // 4: filtered out
					appended <- err
					return
				}
				_, err := s.Append(ctx, []dcb.Event{ev("C", "x"), ev("C", "z"), ev("D", "x", "z")}, nil) // 5 6 7
				appended <- err
			}()
			var got []uint64
			var final error
			for e, err := range s.Subscribe(sctx, tagQuery("x"), 0) {
				if err != nil {
					final = err
					break
				}
				assert.True(t, tagQuery("x").Matches(e.Event), "filtered by the query")
				got = append(got, e.Position)
				if len(got) == 2 {
					close(caughtUp)
				}
				if len(got) == 4 {
					cancel()
				}
			}
			select {
			case <-caughtUp:
			default:
				close(caughtUp) // the subscription ended early: let the appender finish
			}
			assert.Equal(t, []uint64{1, 3, 5, 7}, got)
			assert.ErrorIs(t, final, context.Canceled, "ends with ctx.Err()")
			assert.NoError(t, <-appended)
		})
		t.Run("after skips earlier events", func(t *testing.T) {
			s := open(t, t.TempDir())
			appendOK(t, s, ev("A"), ev("B"), ev("A"), ev("A"))
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			var got []uint64
			var final error
			for e, err := range s.Subscribe(sctx, typeQuery("A"), 3) {
				if err != nil {
					final = err
					break
				}
				got = append(got, e.Position)
				cancel()
			}
			assert.Equal(t, []uint64{4}, got)
			assert.ErrorIs(t, final, context.Canceled)
		})
		t.Run("ends with ctx.Err() while waiting", func(t *testing.T) {
			s := open(t, t.TempDir())
			appendOK(t, s, ev("A"))
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
			defer dcancel()
			var final error
			n := 0
			for _, err := range s.Subscribe(dctx, dcb.All(), 0) {
				if err != nil {
					final = err
					break
				}
				n++
				dcancel() // the store has nothing more: the subscription is waiting when it sees this
			}
			assert.Equal(t, 1, n)
			assert.ErrorIs(t, final, context.Canceled)
			assert.Equal(t, dctx.Err(), final)
		})
		t.Run("ends with ErrClosed when the store closes", func(t *testing.T) {
			s := open(t, t.TempDir())
			appendOK(t, s, ev("A"))
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			closed := make(chan error, 1)
			var final error
			n := 0
			for _, err := range s.Subscribe(sctx, dcb.All(), 0) {
				if err != nil {
					final = err
					break
				}
				n++
				go func() { closed <- s.Close() }()
			}
			assert.Equal(t, 1, n)
			assert.ErrorIs(t, final, store.ErrClosed)
			if n > 0 {
				assert.NoError(t, <-closed)
			}
		})
		t.Run("many subscribers see the same events", func(t *testing.T) {
			s := open(t, t.TempDir())
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			const subs, events = 4, 30
			results := make(chan []uint64, subs)
			for range subs {
				go func() {
					var got []uint64
					for e, err := range s.Subscribe(sctx, typeQuery("E"), 0) {
						if err != nil {
							break
						}
						got = append(got, e.Position)
						if len(got) == events {
							break
						}
					}
					results <- got
				}()
			}
			var want []uint64
			for range events {
				last := appendOK(t, s, ev("E"), ev("Other"))
				want = append(want, last-1)
			}
			for range subs {
				assert.Equal(t, want, <-results)
			}
		})
	})

	t.Run("read-your-writes", func(t *testing.T) {
		t.Parallel()
		s := open(t, t.TempDir())
		for i := range 20 {
			tag := "ryw:" + string(rune('a'+i))
			last := appendOK(t, s, ev("A", tag), ev("B", tag))
			assert.Equal(t, last, s.Head(), "Head")
			got := readPositions(t, s, dcb.All(), store.ReadOptions{Backwards: true, Limit: 1})
			assert.Equal(t, []uint64{last}, got, "Read sees the append at once")
			assert.Equal(t, []uint64{last - 1, last}, readPositions(t, s, tagQuery(tag), store.ReadOptions{}))
			_, err := s.Append(ctx, []dcb.Event{ev("C")}, &dcb.AppendCondition{FailIfEventsMatch: tagQuery(tag), After: last - 1})
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "a condition check sees the append at once")
			for e, err := range s.Subscribe(ctx, tagQuery(tag), last-1) {
				require.NoError(t, err)
				assert.Equal(t, last, e.Position, "Subscribe sees the append at once")
				break
			}
		}
	})

	t.Run("after Close", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(t.TempDir(), nil)
		require.NoError(t, err)
		appendOK(t, s, ev("A", "x"), ev("B"))
		require.NoError(t, s.Close())
		_, err = s.Append(ctx, []dcb.Event{ev("A")}, nil)
		assert.ErrorIs(t, err, store.ErrClosed, "Append")
		_, err = s.Append(ctx, []dcb.Event{ev("A")}, &dcb.AppendCondition{FailIfEventsMatch: dcb.All(), After: 2})
		assert.ErrorIs(t, err, store.ErrClosed, "conditional Append")
		for _, o := range []store.ReadOptions{{}, {Backwards: true}} {
			evs, err := read(s, ctx, dcb.All(), o)
			assert.ErrorIs(t, err, store.ErrClosed, "Read all %+v", o)
			assert.Empty(t, evs)
			evs, err = read(s, ctx, tagQuery("x"), o)
			assert.ErrorIs(t, err, store.ErrClosed, "Read by tag %+v", o)
			assert.Empty(t, evs)
		}
		var last error
		for _, err := range s.Subscribe(ctx, dcb.All(), 0) {
			last = err
			if err != nil {
				break
			}
		}
		assert.ErrorIs(t, last, store.ErrClosed, "Subscribe")
		assert.NoError(t, s.Close(), "Close is idempotent")
	})

	t.Run("after Close, a read that matches nothing", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(t.TempDir(), nil)
		require.NoError(t, err)
		appendOK(t, s, ev("A", "x"))
		require.NoError(t, s.Close())
		_, err = read(s, ctx, tagQuery("nothing"), store.ReadOptions{})
		assert.ErrorIs(t, err, store.ErrClosed, "Read on a closed store reports ErrClosed even when no event matches")
		_, err = read(s, ctx, dcb.All(), store.ReadOptions{From: 10})
		assert.ErrorIs(t, err, store.ErrClosed, "Read on a closed store reports ErrClosed even beyond head")
	})
}

// ---- the helper process ----

const (
	helperEnv        = "POSSUM_STORE_HELPER"
	helperExitLocked = 3
	helperExitError  = 4
)

func helperCommand(dir, mode string) *exec.Cmd {
	cmd := child.Command(helperEnv, mode)
	cmd.Env = append(cmd.Env, "POSSUM_STORE_HELPER_DIR="+dir)
	return cmd
}

// runHelper runs the helper in mode and returns its combined output and
// exit code.
func runHelper(t *testing.T, dir, mode string) (string, int) {
	t.Helper()
	out, err := helperCommand(dir, mode).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err, "output: %s", out)
	return string(out), 0
}

func init() { child.Register(helperEnv, runHelperProcess) }

// runHelperProcess is the child process of the cross-process lock tests.
// Mode "open" opens the store, appends and closes; "hold" opens it, appends,
// prints "ready" and keeps it open until its stdin closes. It exits with
// helperExitLocked when the store is locked.
func runHelperProcess(mode string) {
	dir := os.Getenv("POSSUM_STORE_HELPER_DIR")
	s, err := store.Open(dir, nil)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		if errors.Is(err, store.ErrLocked) {
			os.Exit(helperExitLocked)
		}
		os.Exit(helperExitError)
	}
	if _, err := s.Append(context.Background(), []dcb.Event{{Type: "Child"}}, nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(helperExitError)
	}
	if mode == "hold" {
		os.Stdout.WriteString("ready\n")
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	if err := s.Close(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(helperExitError)
	}
	os.Exit(0)
}
