package store

import (
	"context"
	"fmt"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/wal"
)

type appendRequest struct {
	ctx    context.Context
	events []dcb.Event
	cond   *dcb.AppendCondition
	done   chan appendResult
}

type appendResult struct {
	last uint64
	err  error
}

// maxGroup bounds how many appends share one WAL write and fsync.
const maxGroup = 1024

// Append appends events as one atomic unit and returns the position of the
// last one, once they are durable (see Options.NoSync). When cond is not nil
// and an event matching cond.FailIfEventsMatch exists after cond.After, it
// returns an error wrapping dcb.ErrAppendConditionFailed. Invalid input (an
// empty batch, an invalid event or query) returns an error wrapping
// dcb.ErrInvalidEvent or dcb.ErrInvalidQuery. Whenever Append fails, nothing
// was written and no position was consumed.
//
// A context that ends before the append is taken up by the writer cancels it;
// once taken up, the append completes and Append reports its outcome.
func (s *Store) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if err := dcb.ValidateBatch(events); err != nil {
		return 0, fmt.Errorf("store: append: %w", err)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return 0, fmt.Errorf("store: append condition: %w", err)
		}
	}
	// The size limit applies to what is stored: duplicate tags dropped and
	// whitespace around Data trimmed.
	batch := make([]dcb.Event, len(events))
	for i, e := range events {
		batch[i] = e.Normalized()
	}
	if n := wal.PayloadSizeBound(batch); n > wal.MaxRecordSize {
		return 0, fmt.Errorf("store: append: %w: batch of %d bytes exceeds the %d-byte record limit", dcb.ErrInvalidEvent, n, wal.MaxRecordSize)
	}
	if err := s.waitLag(ctx, uint64(len(batch))); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := &appendRequest{ctx: ctx, events: batch, cond: cond, done: make(chan appendResult, 1)}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	res := <-req.done
	return res.last, res.err
}

// waitLag waits until appending n events keeps the projection lag within
// Options.MaxProjectionLag, or, for a batch larger than the bound, until
// the projection has caught up with the head.
func (s *Store) waitLag(ctx context.Context, n uint64) error {
	bound := s.opts.MaxProjectionLag
	head := s.head.Load()
	if head+n <= bound {
		return nil
	}
	target := head // the projection must reach it before the append
	if n < bound {
		target = head + n - bound
	}
	if s.proj.Projected() >= target {
		return nil
	}
	s.lagWaits.Add(1)
	start := time.Now()
	defer func() { s.lagWaitNanos.Add(int64(time.Since(start))) }()
	if err := s.WaitProjected(ctx, target); err != nil {
		return fmt.Errorf("store: append: waiting for the projection lag to drop below %d: %w", bound, err)
	}
	return nil
}

// writer is the only goroutine that appends: it gathers the appends waiting
// to be taken up into one group and commits them together.
func (s *Store) writer() {
	defer close(s.writerDone)
	group := make([]*appendRequest, 0, maxGroup)
	for {
		select {
		case req := <-s.reqs:
			group = append(group[:0], req)
		case <-s.quit:
			return
		}
	gather:
		for len(group) < maxGroup {
			select {
			case req := <-s.reqs:
				group = append(group, req)
			default:
				break gather
			}
		}
		s.commit(group)
	}
}

// commit checks each append's condition in order, indexing the accepted ones
// so that later appends of the group are checked against them, writes them
// with one WAL append, and answers every caller.
func (s *Store) commit(group []*appendRequest) {
	if s.poisoned != nil {
		for _, req := range group {
			req.done <- appendResult{err: fmt.Errorf("store: append: %w", s.poisoned)}
		}
		return
	}
	now := time.Now().UTC()
	next := s.idx.Head() + 1
	recs := make([]wal.Record, 0, len(group))
	accepted := make([]*appendRequest, 0, len(group))
	for _, req := range group {
		if err := req.ctx.Err(); err != nil {
			req.done <- appendResult{err: err}
			continue
		}
		if c := req.cond; c != nil && s.idx.AnyAfter(c.FailIfEventsMatch, c.After) {
			req.done <- appendResult{err: fmt.Errorf("store: append: %w: an event matching the condition exists after position %d", dcb.ErrAppendConditionFailed, c.After)}
			continue
		}
		for i, e := range req.events {
			// Positions follow the index head, so Add cannot fail here.
			_ = s.idx.Add(next+uint64(i), e)
		}
		recs = append(recs, wal.Record{FirstPosition: next, Timestamp: now, Events: req.events})
		accepted = append(accepted, req)
		next += uint64(len(req.events))
	}
	if len(recs) == 0 {
		return
	}
	start := time.Now()
	err := s.wal.Append(recs)
	s.commits.Add(1)
	s.commitNanos.Add(int64(time.Since(start)))
	s.committed.Add(uint64(len(recs)))
	if err != nil {
		// The index now holds positions that never became durable; reads
		// never see them (they stop at head) and no append follows: the
		// writer is poisoned until the store is reopened.
		s.poisoned = err
		for _, req := range accepted {
			req.done <- appendResult{err: fmt.Errorf("store: append: %w", err)}
		}
		return
	}
	s.publish(next - 1)
	for i, req := range accepted {
		req.done <- appendResult{last: recs[i].LastPosition()}
	}
}
