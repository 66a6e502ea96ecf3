package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lastMatch returns the position of the last event matching q, 0 if none:
// what a decision read before a conditional append.
func lastMatch(s *store.Store, q dcb.Query) (uint64, error) {
	for e, err := range s.Read(context.Background(), q, store.ReadOptions{Backwards: true, Limit: 1}) {
		if err != nil {
			return 0, err
		}
		return e.Position, nil
	}
	return 0, nil
}

func seededRand(t *testing.T) (uint64, func(i int) *rand.Rand) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return seed, func(i int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i))) }
}

// requireGapFree reads the whole log and checks positions run 1..Head.
func requireGapFree(t *testing.T, s *store.Store) []dcb.SequencedEvent {
	t.Helper()
	all := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Len(t, all, int(s.Head()))
	for i, e := range all {
		require.Equal(t, uint64(i+1), e.Position, "gap-free")
	}
	return all
}

// TestConcurrentConsistency is the classic DCB test: many goroutines decide
// from what they read and append on the condition that nothing relevant
// changed since. Afterwards every successful append's expectation must hold
// in the final log, and every failure must be explained by it.
func TestConcurrentConsistency(t *testing.T) {
	const (
		workers    = 20
		iterations = 50
	)
	tags := []string{"k:0", "k:1", "k:2", "k:3", "k:4"}
	s := open(t, t.TempDir())
	_, rngFor := seededRand(t)

	randomQuery := func(rng *rand.Rand) dcb.Query {
		var q dcb.Query
		for range 1 + rng.IntN(2) {
			it := dcb.QueryItem{Tags: []string{tags[rng.IntN(len(tags))]}}
			if rng.IntN(3) == 0 {
				it.Tags = append(it.Tags, tags[rng.IntN(len(tags))])
			}
			if rng.IntN(4) == 0 {
				it.Types = []string{"Even", "Odd"}[rng.IntN(2):][:1]
			}
			q.Items = append(q.Items, it)
		}
		return q
	}

	type attempt struct {
		q     dcb.Query
		after uint64
		pos   uint64 // 0: the condition failed
		tags  []string
		typ   string
	}
	results := make([][]attempt, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rngFor(w)
			for i := range iterations {
				q := randomQuery(rng)
				last, err := lastMatch(s, q)
				if err != nil {
					t.Errorf("worker %d: read: %v", w, err)
					return
				}
				var evTags []string
				for range 1 + rng.IntN(2) {
					evTags = append(evTags, tags[rng.IntN(len(tags))])
				}
				typ := []string{"Even", "Odd"}[i%2]
				pos, err := s.Append(context.Background(),
					[]dcb.Event{{Type: typ, Tags: evTags, Data: []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))}},
					&dcb.AppendCondition{FailIfEventsMatch: q, After: last})
				switch {
				case err == nil:
				case errors.Is(err, dcb.ErrAppendConditionFailed):
					pos = 0
				default:
					t.Errorf("worker %d: append: %v", w, err)
					return
				}
				results[w] = append(results[w], attempt{q: q, after: last, pos: pos, tags: evTags, typ: typ})
			}
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())

	all := requireGapFree(t, s)
	succeeded, failed := 0, 0
	seen := map[uint64]bool{}
	for w, rs := range results {
		require.Len(t, rs, iterations)
		for _, a := range rs {
			if a.pos == 0 {
				failed++
				// A failure needs a matching event after a.after; the log
				// only grows, so it is still there.
				found := false
				for _, e := range all[min(a.after, uint64(len(all))):] {
					found = found || a.q.Matches(e.Event)
				}
				assert.True(t, found, "worker %d: condition %+v after %d failed with no matching event after it", w, a.q, a.after)
				continue
			}
			succeeded++
			require.LessOrEqual(t, a.pos, uint64(len(all)))
			require.False(t, seen[a.pos], "position %d acknowledged twice", a.pos)
			seen[a.pos] = true
			got := all[a.pos-1]
			assert.Equal(t, a.typ, got.Type)
			assert.Equal(t, dcb.Event{Tags: a.tags}.Normalized().Tags, got.Tags)
			assert.Greater(t, a.pos, a.after)
			for _, e := range all[a.after : a.pos-1] {
				assert.False(t, a.q.Matches(e.Event),
					"worker %d: append at %d expected nothing matching %+v after %d, but %d matches", w, a.pos, a.q, a.after, e.Position)
			}
		}
	}
	assert.Equal(t, succeeded, len(all), "every event is an acknowledged append")
	t.Logf("%d appends succeeded, %d failed their condition", succeeded, failed)
	assert.Positive(t, succeeded)
}

// TestConcurrentSameBoundary: N appenders read the same boundary, then race
// to append on it; exactly one wins each round.
func TestConcurrentSameBoundary(t *testing.T) {
	const (
		racers = 32
		rounds = 5
	)
	s := open(t, t.TempDir())
	appendOK(t, s, ev("Unrelated", "other"))
	boundary := tagQuery("course:c1")
	for round := range rounds {
		headBefore := s.Head()
		start := make(chan struct{})
		var ready, wg sync.WaitGroup
		errs := make([]error, racers)
		lasts := make([]uint64, racers)
		for r := range racers {
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				last, err := lastMatch(s, boundary)
				ready.Done()
				if err != nil {
					errs[r] = err
					return
				}
				lasts[r] = last
				<-start
				_, errs[r] = s.Append(context.Background(),
					[]dcb.Event{ev("Subscribed", "course:c1", fmt.Sprintf("student:%d", r))},
					&dcb.AppendCondition{FailIfEventsMatch: boundary, After: last})
			}()
		}
		ready.Wait()
		close(start)
		wg.Wait()
		wins := 0
		for r, err := range errs {
			assert.Equal(t, lasts[0], lasts[r], "round %d: every racer read the same boundary", round)
			if err == nil {
				wins++
				continue
			}
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "round %d racer %d", round, r)
		}
		assert.Equal(t, 1, wins, "round %d: exactly one winner", round)
		assert.Equal(t, headBefore+1, s.Head(), "round %d: one event written", round)
	}
	requireGapFree(t, s)
	assert.Len(t, readAll(t, s, boundary, store.ReadOptions{}), rounds)
}

// TestConcurrentUnrelatedAppends: appends whose conditions concern
// different tags never conflict.
func TestConcurrentUnrelatedAppends(t *testing.T) {
	const (
		workers    = 16
		iterations = 20
	)
	s := open(t, t.TempDir())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := tagQuery(fmt.Sprintf("own:%d", w))
			for i := range iterations {
				last, err := lastMatch(s, own)
				if err != nil {
					t.Errorf("worker %d: read: %v", w, err)
					return
				}
				pos, err := s.Append(context.Background(),
					[]dcb.Event{ev("E", fmt.Sprintf("own:%d", w), "shared"), ev("F", fmt.Sprintf("own:%d", w))},
					&dcb.AppendCondition{FailIfEventsMatch: own, After: last})
				if err != nil {
					t.Errorf("worker %d iteration %d: %v", w, i, err)
					return
				}
				if pos <= last {
					t.Errorf("worker %d: appended at %d, not after %d", w, pos, last)
				}
			}
		}()
	}
	wg.Wait()
	requireGapFree(t, s)
	assert.Equal(t, uint64(workers*iterations*2), s.Head())
	for w := range workers {
		assert.Len(t, readAll(t, s, tagQuery(fmt.Sprintf("own:%d", w)), store.ReadOptions{}), iterations*2)
	}
	assert.Len(t, readAll(t, s, tagQuery("shared"), store.ReadOptions{}), workers*iterations)
}

// TestConcurrentReadsSeeWholeBatches: readers racing writers never see part
// of a batch, and a Read is a snapshot: a gap-free prefix of the log at
// least as long as the head when Read was called and no longer than the
// head after it finished.
func TestConcurrentReadsSeeWholeBatches(t *testing.T) {
	const (
		writers   = 4
		batches   = 25
		batchSize = 5
		readers   = 4
	)
	s := open(t, t.TempDir())
	done := make(chan struct{})
	var writersWG, readersWG sync.WaitGroup
	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for b := range batches {
				tag := fmt.Sprintf("batch:%d-%d", w, b)
				batch := make([]dcb.Event, batchSize)
				for i := range batch {
					batch[i] = ev("B", tag, fmt.Sprintf("writer:%d", w))
				}
				if _, err := s.Append(context.Background(), batch, nil); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	reads := make([]int, readers)
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for last := false; !last; {
				select {
				case <-done:
					last = true // one more read once every writer is done
				default:
				}
				backwards := r%2 == 1
				q := dcb.All()
				if r >= 2 {
					q = tagQuery(fmt.Sprintf("writer:%d", r%writers))
				}
				before := s.Head()
				evs, err := read(s, context.Background(), q, store.ReadOptions{Backwards: backwards})
				after := s.Head()
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				reads[r]++
				if !checkSnapshot(t, r, q, evs, before, after, backwards, batchSize) {
					return
				}
			}
		}()
	}
	writersWG.Wait()
	close(done)
	readersWG.Wait()
	all := requireGapFree(t, s)
	assert.Len(t, all, writers*batches*batchSize)
	assert.True(t, checkSnapshot(t, -1, dcb.All(), all, s.Head(), s.Head(), false, batchSize))
	t.Logf("reads per reader: %v", reads)
}

// checkSnapshot checks one Read's events: every batch whole, positions in
// order, none beyond after; for All, exactly 1..h for some h in [before, after].
func checkSnapshot(t *testing.T, reader int, q dcb.Query, evs []dcb.SequencedEvent, before, after uint64, backwards bool, batchSize int) bool {
	t.Helper()
	ps := positions(evs)
	if backwards {
		slices.Reverse(ps)
	}
	if !slices.IsSorted(ps) || len(slices.Compact(slices.Clone(ps))) != len(ps) {
		t.Errorf("reader %d: positions out of order: %v", reader, ps)
		return false
	}
	if len(ps) > 0 && ps[len(ps)-1] > after {
		t.Errorf("reader %d: saw position %d beyond head %d sampled after the read", reader, ps[len(ps)-1], after)
		return false
	}
	if q.IsAll() {
		n := uint64(len(ps))
		if n < before || n > after || (n > 0 && ps[n-1] != n) {
			t.Errorf("reader %d: read %d events (last %v), head was %d before and %d after", reader, n, ps[max(len(ps), 1)-1:], before, after)
			return false
		}
	}
	counts := map[string]int{}
	for _, e := range evs {
		if !q.Matches(e.Event) {
			t.Errorf("reader %d: event %d does not match %+v", reader, e.Position, q)
			return false
		}
		for _, tag := range e.Tags {
			counts[tag]++
		}
	}
	for tag, n := range counts {
		if len(tag) > 6 && tag[:6] == "batch:" && n != batchSize {
			t.Errorf("reader %d: saw %d events of %s, want %d: part of a batch", reader, n, tag, batchSize)
			return false
		}
	}
	return true
}
