package indexer_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const maxPos = math.MaxUint64

// collect drains a cursor.
func collect(c *indexer.Cursor) []uint64 {
	var out []uint64
	for {
		p, ok := c.Next()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

// matches is the model's match: an event matching q, or a lost marker of
// unknown type (indexed under type ""), which might have matched any query.
func matches(q dcb.Query, e dcb.Event) bool {
	return e.Type == indexer.UnknownType || q.Matches(e)
}

// brute returns the positions in [from, to] (capped to the events held)
// whose event matches q, ascending or descending: the model of Cursor.
func brute(events []dcb.Event, q dcb.Query, from, to uint64, backwards bool) []uint64 {
	var out []uint64
	from = max(from, 1)
	to = min(to, uint64(len(events)))
	for p := from; p <= to && p >= 1; p++ {
		if matches(q, events[p-1]) {
			out = append(out, p)
		}
		if p == maxPos {
			break
		}
	}
	if backwards {
		slices.Reverse(out)
	}
	return out
}

func bruteAnyAfter(events []dcb.Event, q dcb.Query, after uint64) bool {
	return bruteFirstAfter(events, q, after) != 0
}

// bruteFirstAfter is FirstAfter by a scan; 0 for none.
func bruteFirstAfter(events []dcb.Event, q dcb.Query, after uint64) uint64 {
	for i, e := range events {
		if uint64(i+1) > after && matches(q, e) {
			return uint64(i + 1)
		}
	}
	return 0
}

// anyAfter is FirstAfter's verdict alone.
func anyAfter(x *indexer.Index, q dcb.Query, after uint64) bool {
	_, ok := x.FirstAfter(q, after)
	return ok
}

func build(t testing.TB, events []dcb.Event) *indexer.Index {
	t.Helper()
	x := indexer.New()
	for i, e := range events {
		require.NoError(t, x.Add(uint64(i+1), e.Normalized()))
	}
	return x
}

func item(types []string, tags ...string) dcb.QueryItem {
	return dcb.QueryItem{Types: types, Tags: tags}
}

func query(items ...dcb.QueryItem) dcb.Query { return dcb.Query{Items: items} }

func ev(typ string, tags ...string) dcb.Event { return dcb.Event{Type: typ, Tags: tags} }

// fixture: ten events.
//
//	pos type tags
//	1   A    x
//	2   B    x y
//	3   C    y
//	4   A    x y z
//	5   B
//	6   C    z
//	7   A    x z
//	8   B    x y z
//	9   A    y
//	10  C    x y
func fixture() []dcb.Event {
	return []dcb.Event{
		ev("A", "x"),
		ev("B", "x", "y"),
		ev("C", "y"),
		ev("A", "x", "y", "z"),
		ev("B"),
		ev("C", "z"),
		ev("A", "x", "z"),
		ev("B", "x", "y", "z"),
		ev("A", "y"),
		ev("C", "x", "y"),
	}
}

func TestAddRequiresNextPosition(t *testing.T) {
	x := indexer.New()
	assert.Equal(t, uint64(0), x.Head())
	assert.Error(t, x.Add(0, ev("A")), "position 0")
	assert.Error(t, x.Add(2, ev("A")), "gap")
	assert.Equal(t, uint64(0), x.Head())
	require.NoError(t, x.Add(1, ev("A", "t")))
	assert.Error(t, x.Add(1, ev("A")), "reused position")
	assert.Error(t, x.Add(3, ev("A")), "gap")
	require.NoError(t, x.Add(2, ev("B")))
	assert.Equal(t, uint64(2), x.Head())
	// The failed adds left no trace.
	assert.Equal(t, map[string][]uint64{"A": {1}, "B": {2}}, x.Types())
	assert.Equal(t, map[string][]uint64{"t": {1}}, x.Tags())
}

func TestTypesAndTags(t *testing.T) {
	x := build(t, fixture())
	assert.Equal(t, map[string][]uint64{
		"A": {1, 4, 7, 9},
		"B": {2, 5, 8},
		"C": {3, 6, 10},
	}, x.Types())
	assert.Equal(t, map[string][]uint64{
		"x": {1, 2, 4, 7, 8, 10},
		"y": {2, 3, 4, 8, 9, 10},
		"z": {4, 6, 7, 8},
	}, x.Tags())
	assert.Equal(t, uint64(10), x.Head())
}

func TestEmptyIndex(t *testing.T) {
	x := indexer.New()
	assert.Empty(t, collect(x.Cursor(dcb.All(), 0, maxPos, false)))
	assert.Empty(t, collect(x.Cursor(dcb.All(), 0, maxPos, true)))
	assert.Empty(t, collect(x.Cursor(query(item([]string{"A"})), 1, maxPos, false)))
	assert.False(t, anyAfter(x, dcb.All(), 0))
	assert.False(t, anyAfter(x, query(item(nil, "x")), 0))
}

func TestCursorBounds(t *testing.T) {
	x := build(t, fixture())
	typeA := query(item([]string{"A"})) // 1 4 7 9
	tagXY := query(item(nil, "x", "y")) // 2 4 8 10
	cases := []struct {
		name     string
		q        dcb.Query
		from, to uint64
		fwd      []uint64
	}{
		{"all whole", dcb.All(), 1, 10, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"all from 0", dcb.All(), 0, 10, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"all to beyond head", dcb.All(), 8, 1000, []uint64{8, 9, 10}},
		{"all to max", dcb.All(), 9, maxPos, []uint64{9, 10}},
		{"all inner", dcb.All(), 3, 5, []uint64{3, 4, 5}},
		{"all single", dcb.All(), 4, 4, []uint64{4}},
		{"all first", dcb.All(), 0, 1, []uint64{1}},
		{"all last", dcb.All(), 10, 10, []uint64{10}},
		{"all from > to", dcb.All(), 5, 4, nil},
		{"all to 0", dcb.All(), 0, 0, nil},
		{"all from beyond head", dcb.All(), 11, maxPos, nil},
		{"all from max", dcb.All(), maxPos, maxPos, nil},
		{"type whole", typeA, 0, maxPos, []uint64{1, 4, 7, 9}},
		{"type bounds on members", typeA, 4, 9, []uint64{4, 7, 9}},
		{"type bounds between members", typeA, 2, 8, []uint64{4, 7}},
		{"type single member", typeA, 7, 7, []uint64{7}},
		{"type single non-member", typeA, 8, 8, nil},
		{"type gap", typeA, 5, 6, nil},
		{"type from beyond head", typeA, 11, 20, nil},
		{"tags whole", tagXY, 0, maxPos, []uint64{2, 4, 8, 10}},
		{"tags bounds on members", tagXY, 4, 8, []uint64{4, 8}},
		{"tags bounds between members", tagXY, 3, 9, []uint64{4, 8}},
		{"tags single member", tagXY, 10, 10, []uint64{10}},
		{"tags single non-member", tagXY, 9, 9, nil},
		{"tags from > to", tagXY, 8, 4, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.fwd, collect(x.Cursor(tc.q, tc.from, tc.to, false)), "forwards")
			bwd := slices.Clone(tc.fwd)
			slices.Reverse(bwd)
			assert.Equal(t, bwd, collect(x.Cursor(tc.q, tc.from, tc.to, true)), "backwards")
			assert.Equal(t, brute(fixture(), tc.q, tc.from, tc.to, false), tc.fwd, "the table agrees with the model")
		})
	}
}

func TestCursorExhaustedStaysExhausted(t *testing.T) {
	x := build(t, fixture())
	for _, q := range []dcb.Query{dcb.All(), query(item([]string{"A"})), query(item(nil, "x", "y")), query(item([]string{"A"}), item(nil, "z"))} {
		for _, backwards := range []bool{false, true} {
			c := x.Cursor(q, 1, 10, backwards)
			collect(c)
			for range 3 {
				p, ok := c.Next()
				assert.False(t, ok, "%v backwards=%v", q, backwards)
				assert.Zero(t, p)
			}
		}
	}
}

func TestCursorMatching(t *testing.T) {
	x := build(t, fixture())
	cases := []struct {
		name string
		q    dcb.Query
		want []uint64
	}{
		{"one type", query(item([]string{"B"})), []uint64{2, 5, 8}},
		{"types OR'd", query(item([]string{"B", "C"})), []uint64{2, 3, 5, 6, 8, 10}},
		{"duplicate types", query(item([]string{"B", "B"})), []uint64{2, 5, 8}},
		{"one tag", query(item(nil, "z")), []uint64{4, 6, 7, 8}},
		{"two tags AND'd", query(item(nil, "x", "z")), []uint64{4, 7, 8}},
		{"two tags other order", query(item(nil, "z", "x")), []uint64{4, 7, 8}},
		{"three tags AND'd", query(item(nil, "x", "y", "z")), []uint64{4, 8}},
		{"three tags other order", query(item(nil, "z", "y", "x")), []uint64{4, 8}},
		{"duplicate tags", query(item(nil, "z", "z")), []uint64{4, 6, 7, 8}},
		{"disjoint tags", query(item(nil, "y", "z", "q")), nil},
		{"type AND tag", query(item([]string{"A"}, "y")), []uint64{4, 9}},
		{"types OR'd AND tags AND'd", query(item([]string{"A", "B"}, "x", "y")), []uint64{2, 4, 8}},
		{"type AND tags none", query(item([]string{"C"}, "x", "z")), nil},
		{"items OR'd", query(item([]string{"C"}), item(nil, "x", "z")), []uint64{3, 4, 6, 7, 8, 10}},
		{"items overlapping deduped", query(item(nil, "x"), item(nil, "y"), item([]string{"A"})), []uint64{1, 2, 3, 4, 7, 8, 9, 10}},
		{"identical items deduped", query(item(nil, "z"), item(nil, "z")), []uint64{4, 6, 7, 8}},
		{"items in reverse order", query(item([]string{"C"}), item([]string{"A"})), []uint64{1, 3, 4, 6, 7, 9, 10}},
		{"every event via items", query(item([]string{"A", "B", "C"})), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"unknown type", query(item([]string{"Nope"})), nil},
		{"unknown type among known", query(item([]string{"Nope", "B"})), []uint64{2, 5, 8}},
		{"unknown type with tag", query(item([]string{"Nope"}, "x")), nil},
		{"unknown tag", query(item(nil, "nope")), nil},
		{"unknown tag among known", query(item(nil, "x", "nope")), nil},
		{"unknown tag first", query(item(nil, "nope", "x")), nil},
		{"unknown tag with type", query(item([]string{"A"}, "nope")), nil},
		{"unknown item OR known item", query(item(nil, "nope"), item([]string{"B"})), []uint64{2, 5, 8}},
		{"only unknown items", query(item(nil, "nope"), item([]string{"Nope"})), nil},
		{"case-sensitive type", query(item([]string{"a"})), nil},
		{"case-sensitive tag", query(item(nil, "X")), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.q.Validate())
			require.Equal(t, brute(fixture(), tc.q, 0, maxPos, false), tc.want, "the table agrees with the model")
			assert.Equal(t, tc.want, collect(x.Cursor(tc.q, 0, maxPos, false)), "forwards")
			bwd := slices.Clone(tc.want)
			slices.Reverse(bwd)
			assert.Equal(t, bwd, collect(x.Cursor(tc.q, 0, maxPos, true)), "backwards")
			for from := uint64(0); from <= 11; from++ {
				for to := from; to <= 11; to++ {
					assert.Equal(t, brute(fixture(), tc.q, from, to, false), collect(x.Cursor(tc.q, from, to, false)), "forwards [%d,%d]", from, to)
					assert.Equal(t, brute(fixture(), tc.q, from, to, true), collect(x.Cursor(tc.q, from, to, true)), "backwards [%d,%d]", from, to)
				}
			}
		})
	}
}

// TestCursorLeapfrogSkewed intersects a rare tag with very common ones, so
// that the leapfrog seeks far in both directions.
func TestCursorLeapfrogSkewed(t *testing.T) {
	var events []dcb.Event
	for p := 1; p <= 3000; p++ {
		tags := []string{"common"}
		if p%2 == 0 {
			tags = append(tags, "even")
		}
		if p%3 == 0 {
			tags = append(tags, "three")
		}
		if p%997 == 0 {
			tags = append(tags, "rare")
		}
		typ := "T"
		if p%5 == 0 {
			typ = "F"
		}
		events = append(events, ev(typ, tags...))
	}
	x := build(t, events)
	qs := []dcb.Query{
		query(item(nil, "common", "rare")),
		query(item(nil, "rare", "common", "even")),
		query(item(nil, "three", "common", "rare")),
		query(item(nil, "even", "three", "rare")), // none: 6*997 > 3000
		query(item(nil, "even", "three")),
		query(item([]string{"F"}, "three", "common")),
		query(item(nil, "rare"), item(nil, "even", "three")),
	}
	for i, q := range qs {
		for _, b := range [][2]uint64{{0, maxPos}, {998, 2991}, {1000, 1993}, {1994, 1994}, {1995, 2990}} {
			for _, backwards := range []bool{false, true} {
				assert.Equal(t, brute(events, q, b[0], b[1], backwards), collect(x.Cursor(q, b[0], b[1], backwards)),
					"query %d [%d,%d] backwards=%v", i, b[0], b[1], backwards)
			}
		}
	}
	assert.Equal(t, []uint64{997, 1994, 2991}, collect(x.Cursor(qs[0], 0, maxPos, false)))
	assert.Equal(t, []uint64{1994}, collect(x.Cursor(qs[1], 0, maxPos, true)))
	assert.Equal(t, []uint64{2991}, collect(x.Cursor(qs[2], 0, maxPos, false)))
	assert.Empty(t, collect(x.Cursor(qs[3], 0, maxPos, true)))
}

func TestCursorIsSnapshot(t *testing.T) {
	events := fixture()
	for _, q := range []dcb.Query{dcb.All(), query(item([]string{"A"})), query(item(nil, "x")), query(item(nil, "x", "y")), query(item([]string{"A"}), item(nil, "z"))} {
		for _, backwards := range []bool{false, true} {
			x := build(t, events)
			c := x.Cursor(q, 0, maxPos, backwards)
			first, ok := c.Next()
			require.True(t, ok)
			// Added after the cursor was made: never seen.
			require.NoError(t, x.Add(11, ev("A", "x", "y", "z")))
			require.NoError(t, x.Add(12, ev("A", "x", "y", "z")))
			got := append([]uint64{first}, collect(c)...)
			assert.Equal(t, brute(events, q, 0, maxPos, backwards), got, "%v backwards=%v", q, backwards)
		}
	}
}

func TestFirstAfter(t *testing.T) {
	x := build(t, fixture())
	cases := []struct {
		q     dcb.Query
		after uint64
		want  bool
	}{
		{dcb.All(), 0, true},
		{dcb.All(), 9, true},
		{dcb.All(), 10, false},
		{dcb.All(), 11, false},
		{query(item([]string{"A"})), 8, true},
		{query(item([]string{"A"})), 9, false}, // exclusive: the event at 9 does not count
		{query(item([]string{"B"})), 8, false},
		{query(item([]string{"B"})), 7, true},
		{query(item(nil, "x", "z")), 7, true},
		{query(item(nil, "x", "z")), 8, false},
		{query(item(nil, "x", "y")), 8, true},
		{query(item(nil, "x", "y")), 10, false},
		{query(item([]string{"C"}, "z")), 5, true},
		{query(item([]string{"C"}, "z")), 6, false},
		{query(item([]string{"B"}), item(nil, "z")), 8, false},
		{query(item([]string{"C"}), item(nil, "z")), 8, true},
		{query(item(nil, "nope")), 0, false},
		{query(item([]string{"Nope"})), 0, false},
		{query(item(nil, "x", "nope")), 0, false},
	}
	for _, tc := range cases {
		require.Equal(t, bruteAnyAfter(fixture(), tc.q, tc.after), tc.want, "table vs model: %v after %d", tc.q, tc.after)
		at, ok := x.FirstAfter(tc.q, tc.after)
		assert.Equal(t, tc.want, ok, "%v after %d", tc.q, tc.after)
		if ok {
			assert.Equal(t, bruteFirstAfter(fixture(), tc.q, tc.after), at, "%v after %d", tc.q, tc.after)
		}
	}
}

// TestFirstAfterMaxPosition: After is allowed beyond the head, up to the
// largest uint64; nothing can exist after it.
func TestFirstAfterMaxPosition(t *testing.T) {
	x := build(t, fixture())
	for _, q := range []dcb.Query{dcb.All(), query(item([]string{"A"})), query(item(nil, "x")), query(item(nil, "x", "y"))} {
		assert.False(t, anyAfter(x, q, maxPos), "%v after MaxUint64", q)
		assert.False(t, anyAfter(x, q, maxPos-1), "%v after MaxUint64-1", q)
	}
}

// randomEvents draws n events over a few types and tags; one in twenty is
// a lost marker of unknown type (type "", no tags).
func randomEvents(rng *rand.Rand, n int, types, tags []string) []dcb.Event {
	events := make([]dcb.Event, n)
	for i := range events {
		if rng.IntN(20) == 0 {
			continue // the zero Event: an unknown marker
		}
		e := dcb.Event{Type: types[rng.IntN(len(types))]}
		for range rng.IntN(4) {
			e.Tags = append(e.Tags, tags[rng.IntN(len(tags))]) // duplicates possible: Normalized drops them
		}
		events[i] = e.Normalized()
	}
	return events
}

// randomQuery draws 1-3 items of 0-2 types and 0-3 tags, never both empty.
// Names outside the events' vocabulary show up now and then.
func randomQuery(rng *rand.Rand, types, tags []string) dcb.Query {
	pick := func(names []string) string {
		if rng.IntN(12) == 0 {
			return "unknown"
		}
		return names[rng.IntN(len(names))]
	}
	var q dcb.Query
	for range 1 + rng.IntN(3) {
		var it dcb.QueryItem
		for len(it.Types) == 0 && len(it.Tags) == 0 {
			for range rng.IntN(3) {
				it.Types = append(it.Types, pick(types))
			}
			for range rng.IntN(4) {
				it.Tags = append(it.Tags, pick(tags))
			}
		}
		q.Items = append(q.Items, it)
	}
	return q
}

func randomBound(rng *rand.Rand, head uint64) uint64 {
	switch rng.IntN(10) {
	case 0:
		return 0
	case 1:
		return maxPos
	default:
		return rng.Uint64N(head + 3)
	}
}

func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func TestCursorRandomModel(t *testing.T) {
	rng := newRand(t)
	types := []string{"A", "B", "C"}
	tags := []string{"t1", "t2", "t3", "t4", "t5"}
	for round := range 40 {
		events := randomEvents(rng, rng.IntN(300), types, tags)
		x := build(t, events)
		head := uint64(len(events))
		for range 150 {
			var query dcb.Query // one in twenty: All
			if rng.IntN(20) != 0 {
				query = randomQuery(rng, types, tags)
			}
			require.NoError(t, query.Validate())
			from, to := randomBound(rng, head), randomBound(rng, head)
			backwards := rng.IntN(2) == 0
			want := brute(events, query, from, to, backwards)
			got := collect(x.Cursor(query, from, to, backwards))
			if !assert.Equal(t, want, got, "round %d, %d events, query %+v, [%d,%d], backwards=%v", round, len(events), query, from, to, backwards) {
				return
			}
		}
	}
}

func TestFirstAfterRandomModel(t *testing.T) {
	rng := newRand(t)
	types := []string{"A", "B", "C"}
	tags := []string{"t1", "t2", "t3", "t4", "t5"}
	for round := range 40 {
		events := randomEvents(rng, rng.IntN(200), types, tags)
		x := build(t, events)
		head := uint64(len(events))
		for range 150 {
			var q dcb.Query
			if rng.IntN(20) != 0 {
				q = randomQuery(rng, types, tags)
			}
			after := rng.Uint64N(head + 3)
			at, _ := x.FirstAfter(q, after)
			if !assert.Equal(t, bruteFirstAfter(events, q, after), at, "round %d, %d events, query %+v, after %d", round, len(events), q, after) {
				return
			}
		}
	}
}

// TestConcurrentAddAndCursor: one goroutine adds while others query; every
// cursor sees a gap-free prefix of the events, matching the model for the
// head it saw. Run with -race.
func TestConcurrentAddAndCursor(t *testing.T) {
	rng := newRand(t)
	types := []string{"A", "B", "C"}
	tags := []string{"t1", "t2", "t3", "t4", "t5"}
	events := randomEvents(rng, 2000, types, tags)
	queries := make([]dcb.Query, 50)
	for i := range queries {
		queries[i] = randomQuery(rng, types, tags)
	}
	x := indexer.New()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				q := queries[(i*7+r)%len(queries)]
				before := x.Head()
				got := collect(x.Cursor(q, 0, maxPos, r%2 == 0))
				after := x.Head()
				// The cursor saw some head h in [before, after]: its output
				// is the model's for one of those heads.
				ok := false
				for h := before; h <= after && !ok; h++ {
					ok = slices.Equal(brute(events[:h], q, 0, maxPos, r%2 == 0), got)
				}
				if !ok {
					t.Errorf("query %+v between heads %d and %d: got %v", q, before, after, got)
					return
				}
				if found := anyAfter(x, q, before); found && !bruteAnyAfter(events[:x.Head()], q, before) {
					t.Errorf("FirstAfter(%+v, %d) true without a match", q, before)
					return
				}
			}
		}()
	}
	for i, e := range events {
		if err := x.Add(uint64(i+1), e); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	assert.Equal(t, uint64(len(events)), x.Head())
	for _, q := range queries {
		assert.Equal(t, brute(events, q, 0, maxPos, false), collect(x.Cursor(q, 0, maxPos, false)))
	}
}

// TestUnknownMarkersMatchEveryQuery: a lost marker of unknown type is
// indexed under type "" and matches every query, also one of types and tags
// nothing else has (it might have been that event); a marker whose type and
// tags are known is indexed as its event and matches as it would; All
// yields every position once.
func TestUnknownMarkersMatchEveryQuery(t *testing.T) {
	x := build(t, []dcb.Event{
		ev("A", "x"), // 1
		{},           // 2: unknown marker
		ev("B", "y"), // 3
		ev("A", "x"), // 4: a marker whose type and tag the index files told
		{},           // 5: unknown marker
		ev("C", "z"), // 6
	})
	a, b, c := []string{"A"}, []string{"B"}, []string{"C"}
	for _, tc := range []struct {
		q         dcb.Query
		from, to  uint64
		backwards bool
		want      []uint64
	}{
		{query(item(a)), 0, maxPos, false, []uint64{1, 2, 4, 5}},
		{query(item(nil, "z")), 0, maxPos, false, []uint64{2, 5, 6}},
		{query(item([]string{"Nope"})), 0, maxPos, false, []uint64{2, 5}},
		{query(item(nil, "x", "nope")), 0, maxPos, false, []uint64{2, 5}},
		{query(item(a, "x"), item(c)), 0, maxPos, false, []uint64{1, 2, 4, 5, 6}},
		{query(item(b)), 2, 5, true, []uint64{5, 3, 2}},
		{query(item(c)), 3, 4, false, nil},
		{dcb.All(), 0, maxPos, false, []uint64{1, 2, 3, 4, 5, 6}},
		{dcb.All(), 2, 5, true, []uint64{5, 4, 3, 2}},
	} {
		assert.Equal(t, tc.want, collect(x.Cursor(tc.q, tc.from, tc.to, tc.backwards)), "%+v [%d,%d] backwards=%v", tc.q, tc.from, tc.to, tc.backwards)
	}
	for _, tc := range []struct {
		q     dcb.Query
		after uint64
		want  uint64 // 0: none
	}{
		{query(item(nil, "nope")), 0, 2},
		{query(item(nil, "nope")), 2, 5},
		{query(item(nil, "nope")), 5, 0},
		{query(item(c)), 5, 6},
		{query(item(a)), 2, 4},
	} {
		at, ok := x.FirstAfter(tc.q, tc.after)
		assert.Equal(t, tc.want != 0, ok, "%+v after %d", tc.q, tc.after)
		assert.Equal(t, tc.want, at, "%+v after %d", tc.q, tc.after)
	}
	assert.Equal(t, []uint64{2, 5}, x.Types()[indexer.UnknownType])
	assert.Equal(t, []uint64{1, 4}, x.Types()["A"])
}
