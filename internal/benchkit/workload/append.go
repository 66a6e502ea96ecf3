package workload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// WriterTag is the tag writer w of ConditionalAppend owns.
func WriterTag(w int) string { return "writer:" + strconv.Itoa(w) }

// ConditionalAppend runs writers goroutines that each append perWriter
// single events, one at a time, each on the condition that no event with
// the writer's own tag (WriterTag) exists after the last position the writer
// knows for it: the decide-then-append loop of DCB, where no two deciders
// ever conflict. Before the clock starts, each writer reads the newest
// event of its tag (none in a fresh store), so the workload also runs on a
// store that already has them.
//
// A failed condition cannot happen in a correct store: it is counted in
// Failures, the writer reads its tag again and goes on (the failed attempt
// counts towards perWriter, not towards Ops). Any other error stops the
// workload and is returned. P50 and P99 are the latencies of one Append.
func ConditionalAppend(ctx context.Context, s Store, writers, perWriter int, progress Progress) (Result, error) {
	if writers <= 0 || perWriter <= 0 {
		return Result{}, fmt.Errorf("workload: conditional append: %d writers × %d appends", writers, perWriter)
	}
	last := make([]uint64, writers)
	for w := range writers {
		var err error
		if last[w], err = newest(ctx, s, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{WriterTag(w)}}}}); err != nil {
			return Result{}, err
		}
	}
	pc := newProgressCounter(progress)
	lat := make([][]time.Duration, writers)
	failures := make([]int, writers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			tag := WriterTag(w)
			q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}
			lat[w] = make([]time.Duration, 0, perWriter)
			data := writerData(w)
			for range perWriter {
				ev := []dcb.Event{{Type: "OrderPlaced", Tags: []string{tag}, Data: data}}
				t := time.Now()
				pos, err := s.Append(ctx, ev, &dcb.AppendCondition{FailIfEventsMatch: q, After: last[w]})
				took := time.Since(t)
				if errors.Is(err, dcb.ErrAppendConditionFailed) {
					failures[w]++
					if last[w], err = newest(ctx, s, q); err == nil {
						continue
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("workload: writer %d: %w", w, err) })
					cancel()
					return
				}
				lat[w] = append(lat[w], took)
				last[w] = pos
				pc.add(1)
			}
		})
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start)}
	pc.flush()
	if firstErr != nil {
		return Result{}, firstErr
	}
	var all []time.Duration
	for w := range writers {
		r.Ops += len(lat[w])
		r.Failures += failures[w]
		all = append(all, lat[w]...)
	}
	r.Events = r.Ops
	r.setPercentiles(all)
	return r, nil
}

func writerData(w int) []byte {
	return []byte(`{"writer":` + strconv.Itoa(w) + `,"sku":"SKU-000042","quantity":1,"cents":1999,"at":"2026-11-26T10:00:00Z"}`)
}

// newest returns the position of the newest event matching q, 0 if none.
func newest(ctx context.Context, s Store, q dcb.Query) (uint64, error) {
	for e, err := range s.Read(ctx, q, store.ReadOptions{Backwards: true, Limit: 1}) {
		if err != nil {
			return 0, fmt.Errorf("workload: read %v: %w", q, err)
		}
		return e.Position, nil
	}
	return 0, nil
}

// Batches appends batches of size events each, one batch at a time, without
// a condition: the events of Shape{Events: batches×size rounded up to a
// multiple of EventsPerTag, Seed: seed}, in order. P50 and P99 are the
// latencies of one Append.
func Batches(ctx context.Context, s Store, batches, size int, seed uint64, progress Progress) (Result, error) {
	if batches <= 0 || size <= 0 {
		return Result{}, fmt.Errorf("workload: batches: %d batches of %d events", batches, size)
	}
	n := batches * size
	sh := Shape{Events: (n + EventsPerTag - 1) / EventsPerTag * EventsPerTag, Seed: seed}
	return appendShape(ctx, s, sh, 0, n, size, true, progress)
}

// Load appends the events of sh, in order, in appends of batch events (the
// last one may be smaller), without a condition, and returns the appends
// as Ops. Into an empty store, event i of sh lands at position i+1.
func Load(ctx context.Context, s Store, sh Shape, batch int, progress Progress) (Result, error) {
	return LoadRange(ctx, s, sh, 0, sh.Events, batch, progress)
}

// LoadRange is Load of events from to to-1 of sh only: loading a shape in
// slices, one after the other, loads the same store as Load.
func LoadRange(ctx context.Context, s Store, sh Shape, from, to, batch int, progress Progress) (Result, error) {
	if err := sh.Validate(); err != nil {
		return Result{}, err
	}
	if batch <= 0 {
		return Result{}, fmt.Errorf("workload: load in appends of %d events", batch)
	}
	if from < 0 || to > sh.Events || from >= to {
		return Result{}, fmt.Errorf("workload: load events %d..%d of %d", from, to-1, sh.Events)
	}
	return appendShape(ctx, s, sh, from, to, batch, false, progress)
}

// appendShape appends events from to to-1 of sh in appends of batch events,
// timing each append if timed. The events of each append are built before
// the clock runs for it.
func appendShape(ctx context.Context, s Store, sh Shape, from, to, batch int, timed bool, progress Progress) (Result, error) {
	pc := newProgressCounter(progress)
	defer pc.flush()
	var lat []time.Duration
	if timed {
		lat = make([]time.Duration, 0, (to-from+batch-1)/batch)
	}
	events := make([]dcb.Event, 0, batch)
	var r Result
	var built time.Duration // time spent building events, not appending
	start := time.Now()
	for k := from; k < to; k += batch {
		b := time.Now()
		events = events[:0]
		for i := k; i < min(k+batch, to); i++ {
			events = append(events, sh.Event(i))
		}
		t := time.Now()
		built += t.Sub(b)
		if _, err := s.Append(ctx, events, nil); err != nil {
			return Result{}, fmt.Errorf("workload: append of events %d..%d: %w", k, k+len(events)-1, err)
		}
		if timed {
			lat = append(lat, time.Since(t))
		}
		r.Ops++
		r.Events += len(events)
		pc.add(1)
	}
	r.Elapsed = time.Since(start) - built
	r.setPercentiles(lat)
	return r, nil
}
