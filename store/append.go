package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/wal"
)

type appendRequest struct {
	ctx    context.Context
	events []dcb.Event // normalized, as the caller sent them (a zero Timestamp stays zero)
	cond   *dcb.AppendCondition
	ids    bool // some event carries an ID
	// lost: events are lost markers (AppendLost), appended only when
	// the head is after.
	lost  bool
	after uint64
	done  chan appendResult
}

type appendResult struct {
	last uint64
	err  error
	// conflict: the append's condition failed on the event at this
	// position, acknowledged by the time the answer is given; the
	// append's goroutine makes the error (outcome), off the writer.
	conflict uint64
}

// outcome is what Append answers for req, the writer having answered res.
func (s *Store) outcome(req *appendRequest, res appendResult) (uint64, error) {
	if res.conflict != 0 {
		return 0, s.conditionFailed(req.cond, res.conflict)
	}
	return res.last, res.err
}

// maxGroup bounds how many appends the writer gathers into one WAL write:
// it stops taking more once a group holds maxGroup or more (the appends of
// one AppendMany are never split).
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
	req, err := s.newAppendRequest(ctx, events, cond)
	if err != nil {
		return 0, err
	}
	if err := s.submit(ctx, []*appendRequest{req}, len(req.events)); err != nil {
		return 0, err
	}
	return s.outcome(req, <-req.done)
}

// An AppendItem is one append of AppendMany: events appended as one atomic
// unit under Condition (nil: none), as by Append.
type AppendItem struct {
	Events    []dcb.Event
	Condition *dcb.AppendCondition
}

// An AppendOutcome is what Append returns, for one item of AppendMany.
type AppendOutcome struct {
	Last uint64 // the position of the item's last event
	Err  error
}

// AppendMany makes the independent appends items, each as Append would:
// out[i] is what Append(ctx, items[i].Events, items[i].Condition) returns,
// and each item is atomic, checked against its own condition and durable
// once answered, whatever becomes of the others (an invalid item or a
// failed condition fails that item alone). It differs from as many
// concurrent calls of Append in one way: the items reach the writer
// together, in the order given, so that they are checked in that order
// (each against the items accepted before it) and share a WAL write and
// usually an fsync, where concurrent calls may reach it one at a time and
// straddle two. It returns once every item has its outcome. A context that
// ends before the items are taken up cancels every valid item.
func (s *Store) AppendMany(ctx context.Context, items []AppendItem) []AppendOutcome {
	out := make([]AppendOutcome, len(items))
	reqs := make([]*appendRequest, 0, len(items))
	at := make([]int, 0, len(items)) // the item of each request
	events := 0
	for i, it := range items {
		req, err := s.newAppendRequest(ctx, it.Events, it.Condition)
		if err != nil {
			out[i].Err = err
			continue
		}
		reqs = append(reqs, req)
		at = append(at, i)
		events += len(req.events)
	}
	if len(reqs) == 0 {
		return out
	}
	if err := s.submit(ctx, reqs, events); err != nil {
		for _, i := range at {
			out[i].Err = err
		}
		return out
	}
	for j, req := range reqs {
		last, err := s.outcome(req, <-req.done)
		out[at[j]] = AppendOutcome{Last: last, Err: err}
	}
	return out
}

// newAppendRequest validates an append and normalizes its events.
func (s *Store) newAppendRequest(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (*appendRequest, error) {
	if err := dcb.ValidateBatch(events); err != nil {
		return nil, fmt.Errorf("store: append: %w", err)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return nil, fmt.Errorf("store: append condition: %w", err)
		}
	}
	// The size limit applies to what is stored: duplicate tags dropped and
	// whitespace around Data trimmed.
	batch := make([]dcb.Event, len(events))
	ids := false
	for i, e := range events {
		batch[i] = e.Normalized()
		ids = ids || e.ID != ""
	}
	if n, limit := StoredSize(batch), s.recordLimit(); n > limit {
		return nil, fmt.Errorf("store: append: %w: batch of %d bytes exceeds the %d-byte record limit", dcb.ErrInvalidEvent, n, limit)
	}
	return &appendRequest{ctx: ctx, events: batch, cond: cond, ids: ids, done: make(chan appendResult, 1)}, nil
}

// submit hands reqs, of n events in all, to the writer, which takes them
// into one group in order; each is then answered on its done channel.
// Failing, it handed none.
func (s *Store) submit(ctx context.Context, reqs []*appendRequest, n int) error {
	if err := s.waitLag(ctx, uint64(n)); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.reqs <- reqs:
		return nil
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lagBound is the bound on the projection lag in force, in events:
// Options.MaxProjectionLag, or, once the projector has measured its rate,
// the backlog it writes in Options.MaxProjectionDelay if that is fewer
// (rounded, so that a rate measured a hair off does not move it; at least
// 1).
func (s *Store) lagBound() uint64 {
	bound := s.opts.MaxProjectionLag
	if d := s.opts.MaxProjectionDelay; d > 0 {
		if inDelay := s.proj.Rate() * d.Seconds(); inDelay > 0 && inDelay < float64(bound) {
			bound = max(1, uint64(math.Round(inDelay)))
		}
	}
	return bound
}

// waitLag waits until appending n events keeps the projection lag within
// the bound in force (lagBound), or, for a batch larger than the bound,
// until the projection has caught up with the head.
func (s *Store) waitLag(ctx context.Context, n uint64) error {
	bound := s.lagBound()
	head := s.head.Load()
	if head+n <= bound {
		return nil
	}
	target := head // the projection must reach it before the append
	if n < bound {
		target = head + n - bound
	}
	if s.proj.Frontier() >= target {
		return nil
	}
	s.lagWaits.Add(1)
	start := time.Now()
	defer func() { s.lagWaitNanos.Add(int64(time.Since(start))) }()
	err := s.proj.WaitFrontier(ctx, target)
	if errors.Is(err, projector.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: append: waiting for the projection lag to drop below %d: %w", bound, err)
	}
	return nil
}

// The commit pipeline has two goroutines. The writer takes every append
// waiting into a group, checks their conditions in order against the
// in-memory index (which holds every accepted event, durable or not, so each
// condition sees the appends accepted before it), adds the accepted ones to
// the index, writes them to the WAL with one write and hands the group to the
// syncer. The syncer fsyncs: one wal.Sync covers every group written so far,
// and while it runs the writer forms, checks and writes the next groups. Only
// once the fsync covering a group returns does the syncer publish the new
// head and answer the group's callers, in order. To fill each fsync, the
// syncer lets the callers it answered run, then has the writer write whatever
// waits, before it takes what is written for the next sync.
//
// A failed write or fsync poisons the WAL: the group that met it and every
// group written after it fail (their Write or Sync reports the poisoning),
// and so does every later append.

// writtenGroup is a group written to the WAL and not yet answered.
type writtenGroup struct {
	reqs []*appendRequest
	last []uint64 // per request, the position of its last event
	// deferred were answered without writing, on events that may not be
	// acknowledged yet: appends whose condition failed on such an event,
	// and retries of appends still in flight. Each is answered once
	// those events are acknowledged, so that a caller told of a conflict
	// can read the event that caused it, and a retry is never answered
	// before the append it repeats.
	deferred []deferral
	upTo     uint64 // the last position written with or before the group
}

// deferral is an answer waiting for the events up to position upTo to be
// acknowledged.
type deferral struct {
	req  *appendRequest
	upTo uint64
	res  appendResult
}

// writer is the only goroutine that appends to the WAL: it gathers the
// appends waiting to be taken up into one group and writes them together.
// Asked to flush (by the syncer, about to take what is written), it writes
// the appends waiting at that moment, then says so.
func (s *Store) writer() {
	defer close(s.writerDone)
	group := make([]*appendRequest, 0, maxGroup)
	for {
		flush := false
		select {
		case reqs := <-s.reqs:
			group = append(group[:0], reqs...)
		case <-s.flushReq:
			flush, group = true, group[:0]
		case <-s.quit:
			return
		}
	gather:
		for len(group) < maxGroup {
			select {
			case reqs := <-s.reqs:
				group = append(group, reqs...)
			default:
				break gather
			}
		}
		if len(group) > 0 {
			s.write(group)
		}
		if flush {
			s.flushed <- struct{}{}
		}
	}
}

// write checks each append's condition in order, indexing the accepted ones
// so that later appends are checked against them, writes them with one WAL
// write and hands them to the syncer.
func (s *Store) write(group []*appendRequest) {
	if s.poisoned != nil {
		for _, req := range group {
			req.done <- appendResult{err: fmt.Errorf("store: append: %w", s.poisoned)}
		}
		return
	}
	now := time.Now().UTC()
	next := s.idx.Head() + 1
	s.inflight.trim(s.head.Load())
	recs := make([]wal.Record, 0, len(group))
	w := &writtenGroup{reqs: make([]*appendRequest, 0, len(group)), last: make([]uint64, 0, len(group))}
	// answer answers req with res once the events up to upTo are
	// acknowledged: at once when they are.
	answer := func(req *appendRequest, upTo uint64, res appendResult) {
		if upTo > s.head.Load() {
			w.deferred = append(w.deferred, deferral{req, upTo, res})
			return
		}
		req.done <- res
	}
	for _, req := range group {
		if err := req.ctx.Err(); err != nil {
			req.done <- appendResult{err: err}
			continue
		}
		if req.lost {
			if h := s.idx.Head(); h != req.after {
				answer(req, h, appendResult{err: lostHeadMoved(h, req.after)})
				continue
			}
		}
		if req.ids {
			// Before the condition: a retry must not fail on its own
			// events.
			last, err := s.retried(req)
			if err != nil {
				req.done <- appendResult{err: fmt.Errorf("store: append: %w", err)}
				continue
			}
			if last != 0 {
				answer(req, last, appendResult{last: last})
				continue
			}
		}
		if c := req.cond; c != nil && c.After < s.idx.Head() {
			// The first matching event after c.After, if any, fails it.
			if at, ok := s.idx.Cursor(c.FailIfEventsMatch, c.After+1, ^uint64(0), false).Next(); ok {
				answer(req, at, appendResult{conflict: at})
				continue
			}
		}
		for i, e := range req.events {
			// Positions follow the index head, so Add cannot fail here.
			_ = s.idx.Add(next+uint64(i), e)
		}
		s.inflight.add(next, req.events)
		rec := wal.Record{FirstPosition: next, Stamp: now, Events: req.events}
		if req.lost {
			rec.Lost = make([]bool, len(req.events))
			for i := range rec.Lost {
				rec.Lost[i] = true
			}
		}
		recs = append(recs, rec)
		next += uint64(len(req.events))
		w.reqs = append(w.reqs, req)
		w.last = append(w.last, next-1)
	}
	w.upTo = next - 1
	if len(recs) == 0 {
		if len(w.deferred) > 0 {
			s.handToSyncer(w)
		}
		return
	}
	if err := s.wal.Write(recs); err != nil {
		// The index now holds positions that never became durable; reads
		// never see them (they stop at head) and no append follows: the
		// writer is poisoned until the store is reopened. The groups
		// written before this one and not yet synced fail too: the
		// poisoned WAL syncs nothing more.
		s.poisoned = err
		w.fail(err)
		return
	}
	if s.onWritten != nil {
		s.onWritten(next - 1)
	}
	s.handToSyncer(w)
}

// conditionFailed is the error of an append whose condition c failed on
// the acknowledged event at position at: an event matching it, or a lost
// marker (see LostConditionFailed).
func (s *Store) conditionFailed(c *dcb.AppendCondition, at uint64) error {
	if typ, lost := s.lostAt(at); lost {
		return fmt.Errorf("store: append: %w", LostConditionFailed(c.After, at, typ))
	}
	return fmt.Errorf("store: append: %w: an event matching the condition exists after position %d", dcb.ErrAppendConditionFailed, c.After)
}

// fail answers every append of w with err.
func (w *writtenGroup) fail(err error) {
	for _, req := range w.reqs {
		req.done <- appendResult{err: fmt.Errorf("store: append: %w", err)}
	}
	for _, d := range w.deferred {
		d.req.done <- appendResult{err: fmt.Errorf("store: append: %w", err)}
	}
}

// answerDeferred gives the deferred answers of w that wait for events at or
// below acked, and keeps the others.
func (w *writtenGroup) answerDeferred(acked uint64) {
	waiting := w.deferred[:0]
	for _, d := range w.deferred {
		if d.upTo > acked {
			waiting = append(waiting, d)
			continue
		}
		d.req.done <- d.res
	}
	w.deferred = waiting
}

// handToSyncer queues w for the syncer and wakes it.
func (s *Store) handToSyncer(w *writtenGroup) {
	s.syncMu.Lock()
	s.written = append(s.written, w)
	s.syncMu.Unlock()
	select {
	case s.syncWake <- struct{}{}:
	default: // the syncer is already due to look
	}
}

// syncer answers the groups the writer wrote, once they are durable. Woken by
// a written group, it asks the writer to write what is waiting, then syncs
// every group written. When the writer has stopped, it answers what is left
// and stops too.
func (s *Store) syncer() {
	defer close(s.syncerDone)
	for {
		stopping := false
		select {
		case <-s.syncWake:
		case <-s.writerDone:
			stopping = true
		}
		if !stopping {
			// Have the appends waiting now written first, so that this
			// sync covers them rather than the next.
			select {
			case s.flushReq <- struct{}{}:
				<-s.flushed
			case <-s.writerDone:
			}
		}
		s.syncMu.Lock()
		groups := s.written
		s.written = nil
		s.syncMu.Unlock()
		if len(groups) > 0 {
			s.sync(groups)
		}
		if stopping {
			return
		}
	}
}

// sync makes groups durable with one WAL sync (none when an earlier sync
// already covered them), publishes the new head and answers their callers.
func (s *Store) sync(groups []*writtenGroup) {
	// Answers waiting for events an earlier sync acknowledged are given
	// now, not after this one.
	for _, g := range groups {
		g.answerDeferred(s.head.Load())
	}
	last := groups[len(groups)-1].upTo
	var err error
	if s.wal.LastPosition() < last {
		start := time.Now()
		var durable uint64
		durable, err = s.wal.Sync()
		s.commits.Add(1)
		s.commitNanos.Add(int64(time.Since(start)))
		if err == nil && durable < last {
			err = fmt.Errorf("wal sync covered up to %d, not the written %d", durable, last) // a bug
		}
	}
	if err != nil {
		// No append of these groups is acknowledged: the WAL is poisoned
		// (the writer's next Write fails too) or, after a bug, the store
		// cannot tell what is durable.
		// The answers waiting for an event of these groups get this
		// error instead: that event was never acknowledged.
		for _, g := range groups {
			g.fail(err)
		}
		return
	}
	if last > s.head.Load() {
		s.publish(last)
	}
	for _, g := range groups {
		s.committed.Add(uint64(len(g.reqs)))
		for i, req := range g.reqs {
			req.done <- appendResult{last: g.last[i]}
		}
		g.answerDeferred(last)
	}
	// Let the callers just answered run before the next sync takes what is
	// written: those that append again at once are then written in time to
	// share it, instead of waiting a whole fsync for the one after. Without
	// this, closed-loop writers split into two halves that take turns, each
	// fsync covering one. With no one else to run, it returns at once.
	runtime.Gosched()
}

// MaxAppendSize bounds one append as stored, in bytes (see StoredSize):
// an append over it is refused with dcb.ErrInvalidEvent, nothing written.
const MaxAppendSize = wal.MaxRecordSize

// StoredSize returns how many bytes events take as one append in the WAL,
// at most: what MaxAppendSize bounds. The store measures events as
// normalized (dcb.Event.Normalized), which only makes them smaller. A
// caller that splits events into appends (an importer, a store on another
// engine) sizes them with it.
func StoredSize(events []dcb.Event) int { return wal.PayloadSizeBound(events) }
