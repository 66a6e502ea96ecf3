package decision_test

import (
	"context"
	"errors"
	"iter"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openStore opens a fresh store that t closes; NoSync keeps tests fast.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir(), &store.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// remote is a store.EventStore other than *store.Store whose head lags behind what
// it reads (it says 0, which a Read after it can never contradict), as a
// store another process writes might: Build dates its condition by the
// events it read.
type remote struct{ s *store.Store }

func (r remote) HeadContext(ctx context.Context) (uint64, error) {
	if _, err := r.s.HeadContext(ctx); err != nil {
		return 0, err
	}
	return 0, nil
}

func (r remote) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return r.s.Read(ctx, q, o)
}

func (r remote) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return r.s.Subscribe(ctx, q, after)
}

func (r remote) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	return r.s.Append(ctx, events, cond)
}

// stores runs f against a store, directly and as a remote whose head lags.
func stores(t *testing.T, f func(t *testing.T, s store.EventStore)) {
	t.Run("store", func(t *testing.T) { f(t, openStore(t)) })
	t.Run("remote", func(t *testing.T) { f(t, remote{openStore(t)}) })
}

func tagged(tags ...string) dcb.Query {
	return dcb.Query{Items: []dcb.QueryItem{{Tags: tags}}}
}

func event(typ string, tags ...string) dcb.Event { return dcb.Event{Type: typ, Tags: tags} }

func appendEvents(t *testing.T, s store.EventStore, events ...dcb.Event) {
	t.Helper()
	for _, e := range events {
		_, err := s.Append(context.Background(), []dcb.Event{e}, nil)
		require.NoError(t, err)
	}
}

// positions projects the positions of the events q matches.
func positions(q dcb.Query) decision.Projection[[]uint64] {
	return decision.Projection[[]uint64]{
		Query: q,
		Fold: func(ps []uint64, e dcb.SequencedEvent) ([]uint64, error) {
			return append(ps, e.Position), nil
		},
	}
}

func TestBuildFoldsEachProjectionOverItsOwnEventsOnly(t *testing.T) {
	stores(t, func(t *testing.T, s store.EventStore) {
		appendEvents(t, s,
			event("A", "x"),      // 1: x only
			event("B", "y"),      // 2: y only
			event("C", "x", "y"), // 3: both
			event("D", "z"),      // 4: neither
			event("E", "x"),      // 5: x only
		)
		var m decision.Model
		xs := decision.Add(&m, positions(tagged("x")))
		ys := decision.Add(&m, positions(tagged("y")))
		n := decision.Add(&m, decision.Projection[int]{
			Query:   dcb.Query{Items: []dcb.QueryItem{{Types: []string{"B"}}}},
			Initial: 10,
			Fold:    func(n int, _ dcb.SequencedEvent) (int, error) { return n + 1, nil },
		})
		assert.Nil(t, xs.State(), "before Build: Initial")
		assert.Equal(t, 10, n.State(), "before Build: Initial")

		cond, err := m.Build(context.Background(), s)
		require.NoError(t, err)
		assert.Equal(t, []uint64{1, 3, 5}, xs.State())
		assert.Equal(t, []uint64{2, 3}, ys.State())
		assert.Equal(t, 11, n.State())
		assert.Equal(t, m.Query(), cond.FailIfEventsMatch)
		assert.Equal(t, uint64(5), cond.After)

		_, err = m.Build(context.Background(), s)
		require.NoError(t, err)
		assert.Equal(t, []uint64{1, 3, 5}, xs.State(), "a second Build starts from Initial again")
		assert.Equal(t, 11, n.State())
	})
}

func TestConditionRejectsAConcurrentChangeToAnyProjection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		concurrent dcb.Event
		fails      bool
	}{
		{"an event of the first projection", event("A", "x"), true},
		{"an event of the second projection only", event("B", "y"), true},
		{"an event of both", event("C", "x", "y"), true},
		{"an unrelated event", event("D", "z"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stores(t, func(t *testing.T, s store.EventStore) {
				appendEvents(t, s, event("A", "x"), event("D", "z"))
				var m decision.Model
				decision.Add(&m, positions(tagged("x")))
				decision.Add(&m, decision.Projection[bool]{Query: tagged("y")})
				cond, err := m.Build(context.Background(), s)
				require.NoError(t, err)

				appendEvents(t, s, tc.concurrent)
				_, err = s.Append(context.Background(), []dcb.Event{event("Decided", "x")}, &cond)
				if tc.fails {
					assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
				} else {
					assert.NoError(t, err)
				}
			})
		})
	}
}

// When nothing matches, a store's head dates the condition; a store
// whose head says 0 gets 0. Either way a later matching event fails the append.
func TestBuildAfterWhenNothingMatched(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     func(*store.Store) store.EventStore
		after uint64
	}{
		{"store: its head", func(s *store.Store) store.EventStore { return s }, 2},
		{"remote whose head lags: 0", func(s *store.Store) store.EventStore { return remote{s} }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(openStore(t))
			appendEvents(t, s, event("D", "z"), event("D", "z"))
			var m decision.Model
			p := decision.Add(&m, positions(tagged("x")))
			cond, err := m.Build(context.Background(), s)
			require.NoError(t, err)
			assert.Nil(t, p.State())
			assert.Equal(t, tc.after, cond.After)

			appendEvents(t, s, event("D", "z"))
			_, err = s.Append(context.Background(), []dcb.Event{event("A", "x")}, &cond)
			require.NoError(t, err, "unrelated events do not fail it")
			_, err = s.Append(context.Background(), []dcb.Event{event("A", "x")}, &cond)
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "a matching event does")
		})
	}
}

func TestQueryIsTheUnion(t *testing.T) {
	var m decision.Model
	decision.Add(&m, decision.Projection[int]{Query: tagged("x")})
	decision.Add(&m, decision.Projection[string]{Query: tagged("y", "z")})
	assert.Equal(t, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"x"}}, {Tags: []string{"y", "z"}}}}, m.Query())

	decision.Add(&m, decision.Projection[bool]{Query: dcb.All()})
	assert.True(t, m.Query().IsAll(), "a projection of every event widens the union to every event")
}

func TestBuildErrors(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, event("A", "x"))
	ctx := context.Background()

	var empty decision.Model
	_, err := empty.Build(ctx, s)
	assert.ErrorContains(t, err, "no projection", "no projection is a mistake, not a read of every event")

	var invalid decision.Model
	decision.Add(&invalid, decision.Projection[int]{Query: dcb.Query{Items: []dcb.QueryItem{{}}}})
	_, err = invalid.Build(ctx, s)
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery)

	bad := errors.New("bad data")
	var failing decision.Model
	decision.Add(&failing, decision.Projection[int]{
		Query: tagged("x"),
		Fold:  func(int, dcb.SequencedEvent) (int, error) { return 0, bad },
	})
	_, err = failing.Build(ctx, s)
	assert.ErrorIs(t, err, bad)
	assert.ErrorContains(t, err, "position 1")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	var m decision.Model
	decision.Add(&m, positions(tagged("x")))
	_, err = m.Build(canceled, s)
	assert.ErrorIs(t, err, context.Canceled)
}
