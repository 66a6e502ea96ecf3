package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// ReadByTag reads the EventsPerTag events of a random order tag of sh
// (seeded by sh.Seed), reads times, from a store loaded with sh, and
// returns an error if a read yields another number of events. Ops are the
// queries, Events the events read; P50 and P99 are the latencies of one
// query, its events consumed.
func ReadByTag(ctx context.Context, s Store, sh Shape, reads int, progress Progress) (Result, error) {
	return ReadByTagRange(ctx, s, sh, 0, sh.Events, reads, progress)
}

// ReadByTagRange is ReadByTag of the orders whose events are events from to
// to-1 of sh, bounds that split no order: multiples of sh.BlockEvents(), or
// sh.Events. A store loaded in slices of different append sizes
// (LoadRange) is so read slice by slice.
func ReadByTagRange(ctx context.Context, s Store, sh Shape, from, to, reads int, progress Progress) (Result, error) {
	if err := sh.Validate(); err != nil {
		return Result{}, err
	}
	block := sh.BlockEvents()
	if from < 0 || from >= to || to > sh.Events || from%block != 0 || (to%block != 0 && to != sh.Events) {
		return Result{}, fmt.Errorf("workload: read the tags of events %d..%d: bounds must be multiples of %d or %d", from, to-1, block, sh.Events)
	}
	lo, hi := from/EventsPerTag, to/EventsPerTag // the orders of those events
	rng := rand.New(rand.NewPCG(sh.Seed, 1))
	queries := make([]dcb.Query, reads)
	for i := range queries {
		queries[i] = TagQuery(lo + rng.IntN(hi-lo))
	}
	return readQueries(ctx, s, queries, store.ReadOptions{}, EventsPerTag, progress)
}

// ReadNewest reads the newest event of a random type of sh (seeded by
// sh.Seed; Backwards, Limit 1), reads times, from a store loaded with sh,
// and returns an error if a read yields no event or one of another type.
// P50 and P99 are the latencies of one query.
func ReadNewest(ctx context.Context, s Store, sh Shape, reads int, progress Progress) (Result, error) {
	if err := sh.Validate(); err != nil {
		return Result{}, err
	}
	rng := rand.New(rand.NewPCG(sh.Seed, 2))
	queries := make([]dcb.Query, reads)
	for i := range queries {
		queries[i] = TypeQuery(Types[rng.IntN(len(Types))])
	}
	return readQueries(ctx, s, queries, store.ReadOptions{Backwards: true, Limit: 1}, 1, progress)
}

// readQueries reads each query with o and checks it yields want events that
// match it.
func readQueries(ctx context.Context, s Store, queries []dcb.Query, o store.ReadOptions, want int, progress Progress) (Result, error) {
	if len(queries) == 0 {
		return Result{}, fmt.Errorf("workload: no reads to make")
	}
	pc := newProgressCounter(progress)
	defer pc.flush()
	lat := make([]time.Duration, 0, len(queries))
	var r Result
	start := time.Now()
	for _, q := range queries {
		t := time.Now()
		got, mismatch := 0, false
		for e, err := range s.Read(ctx, q, o) {
			if err != nil {
				return Result{}, fmt.Errorf("workload: read %v: %w", q, err)
			}
			got++
			mismatch = mismatch || !q.Matches(e.Event)
		}
		lat = append(lat, time.Since(t))
		if got != want || mismatch {
			return Result{}, fmt.Errorf("%w: read %v yielded %d events (want %d), some not matching: %v", errShape, q, got, want, mismatch)
		}
		r.Ops++
		r.Events += got
		pc.add(1)
	}
	r.Elapsed = time.Since(start)
	r.setPercentiles(lat)
	return r, nil
}

// FullScan reads every event of the store once, in position order, and
// returns an error unless it yields positions 1 to Head() without a gap.
// Ops is 1; progress counts events.
func FullScan(ctx context.Context, s Store, progress Progress) (Result, error) {
	pc := newProgressCounter(progress)
	defer pc.flush()
	head := s.Head()
	var r Result
	var next uint64 = 1
	start := time.Now()
	for e, err := range s.Read(ctx, dcb.All(), store.ReadOptions{}) {
		if err != nil {
			return Result{}, fmt.Errorf("workload: scan: %w", err)
		}
		if e.Position != next {
			return Result{}, fmt.Errorf("%w: scan yielded position %d, want %d", errShape, e.Position, next)
		}
		next++
		if (next-1)%progressEvery == 0 {
			pc.add(progressEvery)
		}
	}
	r.Elapsed = time.Since(start)
	r.Ops, r.Events = 1, int(next-1)
	if r.Events != int(head) {
		return Result{}, fmt.Errorf("%w: scan yielded %d events, head is %d", errShape, r.Events, head)
	}
	pc.add(r.Events % progressEvery)
	return r, nil
}
