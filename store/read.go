package store

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/wal"
)

// ReadOptions shape a Read.
type ReadOptions struct {
	// From is inclusive: reading forwards, the lowest position; backwards,
	// the highest. 0: the start (or, backwards, the end).
	From uint64
	// Limit: at most this many events, counted after filtering; 0: no limit.
	Limit int
	// Backwards: newest first.
	Backwards bool
}

// ctxCheckEvery is how many events a read yields between context checks.
const ctxCheckEvery = 64

// Read returns the events matching q in position order (newest first when
// o.Backwards), streaming them: nothing holds the whole result in memory.
//
// The read is a snapshot taken when Read is called: it sees exactly the
// appends acknowledged by then. An invalid query, a read error, a closed
// store or an ended context is yielded as the error of the last pair.
func (s *Store) Read(ctx context.Context, q dcb.Query, o ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return s.read(ctx, q, o)
}

func (s *view) read(ctx context.Context, q dcb.Query, o ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	head := s.head.Load()
	return func(yield func(dcb.SequencedEvent, error) bool) {
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("store: read: %w", err))
			return
		}
		from, to, err := o.Span(head)
		if err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("store: read: %w", err))
			return
		}
		s.stream(ctx, q, from, to, o.Backwards, o.Limit, yield)
	}
}

// Span returns the positions a read with these options covers on a store
// whose head is head: from..to inclusive, lowest first, none when from > to.
// A negative Limit is an error wrapping dcb.ErrInvalidQuery. Other DCB stores
// (the peers of the benchmark module) use it to read exactly as Read does.
func (o ReadOptions) Span(head uint64) (from, to uint64, err error) {
	if o.Limit < 0 {
		return 0, 0, fmt.Errorf("%w: negative limit %d", dcb.ErrInvalidQuery, o.Limit)
	}
	if !o.Backwards {
		return max(o.From, 1), head, nil
	}
	if o.From != 0 {
		return 1, min(o.From, head), nil
	}
	return 1, head, nil
}

// stream yields the events matching q in [from, to]; it returns false when the
// consumer stopped or an error was yielded.
func (s *view) stream(ctx context.Context, q dcb.Query, from, to uint64, backwards bool, limit int, yield func(dcb.SequencedEvent, error) bool) bool {
	var cur *indexer.Cursor
	if q.IsAll() {
		cur = indexer.Range(from, to, backwards) // no index needed
	} else {
		if s.indexTo != nil {
			if err := s.indexTo(to); err != nil {
				yield(dcb.SequencedEvent{}, err)
				return false
			}
		}
		cur = s.idx.Cursor(q, from, to, backwards)
	}
	rd := s.wal.NewReader()
	for n := 0; limit == 0 || n < limit; n++ {
		pos, ok := cur.Next()
		// Every step looks at the quit channel (a non-blocking receive),
		// so a read that meets Close ends with ErrClosed, never with what
		// closing did to the files under it.
		if s.closed() {
			yield(dcb.SequencedEvent{}, ErrClosed)
			return false
		}
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				yield(dcb.SequencedEvent{}, err)
				return false
			}
		}
		if !ok {
			return true
		}
		e, err := rd.Event(pos)
		if err != nil {
			if s.closed() {
				// Close shut the WAL during this read. ErrClosed says it
				// all, and wrapped in "store: ..." would say "store:" twice.
				err = ErrClosed
			} else {
				err = fmt.Errorf("store: read position %d: %w", pos, err)
			}
			yield(dcb.SequencedEvent{}, err)
			return false
		}
		if !yield(e, nil) {
			return false
		}
	}
	return true
}

// Subscribe yields the events matching q after position after, first those
// already stored, then each new one as its append is acknowledged, until ctx
// ends (the last pair then carries ctx.Err()) or the store closes (ErrClosed).
// Events come in position order, each once.
func (s *Store) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return s.subscribe(ctx, q, after)
}

func (s *view) subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return func(yield func(dcb.SequencedEvent, error) bool) {
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("store: subscribe: %w", err))
			return
		}
		for {
			published := s.published()
			if err := s.failure(); err != nil {
				yield(dcb.SequencedEvent{}, err)
				return
			}
			if head := s.head.Load(); head > after {
				if !s.stream(ctx, q, after+1, head, false, 0, yield) {
					return
				}
				after = head
				continue
			}
			select {
			case <-published:
			case <-ctx.Done():
				yield(dcb.SequencedEvent{}, ctx.Err())
				return
			case <-s.quit:
				yield(dcb.SequencedEvent{}, ErrClosed)
				return
			}
		}
	}
}

// view is what reads need of a store or a follower: the index, the WAL it
// indexes, the head reads may see, and word of the head advancing or of
// Close.
type view struct {
	idx  *indexer.Index
	wal  *wal.Log
	head atomic.Uint64 // the last acknowledged position: what reads may see
	// indexTo brings idx up to a position at or below head before a
	// query that needs it; nil where idx is never behind head (the
	// writer indexes each append before publishing it).
	indexTo func(to uint64) error

	quit     chan struct{} // closed by Close
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when head advances
	failed   error         // under notifyMu: why reads can no longer go on
}

func newView() view {
	return view{quit: make(chan struct{}), notify: make(chan struct{})}
}

func (s *view) closed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// published returns a channel closed when the head next advances (or the
// store closes).
func (s *view) published() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

// fail ends the subscriptions waiting for new events with err, and every
// later one.
func (s *view) fail(err error) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.failed = err
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *view) failure() error {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.failed
}

// publish makes head visible to reads and wakes subscribers.
func (s *view) publish(head uint64) {
	s.head.Store(head)
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}
