package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// Applying the stream to the replica takes two goroutines:
//
//   - the follower reads the stream with an ordered consumer from the
//     replica's head + 1, decodes each message and hands every JetStream
//     batch, whole, to the apply loop;
//   - the apply loop appends to the replica, in position order, what it is
//     handed: it takes every batch waiting and appends the run that
//     continues the replica's head as one append (one local fsync), so that
//     catching up and heavy load cost one fsync per gathering, not per
//     batch, and a read never sees part of an append.
//
// The writer hands the apply loop the batches it committed too, as soon as
// JetStream acknowledged them: its callers are then answered without
// waiting for the stream to deliver their events back. The same batch then
// also comes from the follower; the apply loop keeps whichever arrives
// first (both hold the stream's bytes at the stream's positions).

// Bounds of one append to the replica.
const (
	applyMaxEvents = 8192
	applyMaxBytes  = 16 << 20
)

// Pull settings of the follower's consumer: a heartbeat every two seconds,
// so that a server that died under it is noticed in a few.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// orderedResets is how many times the follower's consumer recreates
// itself before Next gives up.
const orderedResets = 2

// applyQueue is how many batches may wait for the apply loop before the
// follower and the writer wait for it.
const applyQueue = 256

// span is one JetStream batch: its events at positions first onwards.
type span struct {
	first  uint64
	events []streamEvent
	size   int // store.StoredSize of the events
}

func newSpan(first uint64, events []streamEvent) span {
	return span{first: first, events: events, size: store.StoredSize(storeEvents(events))}
}

func (s span) last() uint64 { return s.first + uint64(len(s.events)) - 1 }

// storeEvents returns es as the store will take them.
func storeEvents(es []streamEvent) []dcb.Event {
	out := make([]dcb.Event, len(es))
	for i, e := range es {
		out[i] = toStore(e)
	}
	return out
}

// errStopped marks an error after which applying stops for good: the
// stream holds what the replica cannot take, or the replica failed.
type errStopped struct{ err error }

func (e errStopped) Error() string { return e.err.Error() }
func (e errStopped) Unwrap() error { return e.err }

// applier runs the follower and the apply loop until the node closes.
func (n *Node) applier() {
	defer close(n.applierDone)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.applyLoop()
	}()
	n.followLoop()
	<-done
}

// followLoop follows the stream until the node closes or applying stops,
// following again after a transient failure.
func (n *Node) followLoop() {
	backoff := 50 * time.Millisecond
	var lastGap uint64
	gaps := 0
	for {
		before := n.rep.st.Head()
		err := n.follow()
		if n.ctx.Err() != nil || n.stopped() {
			return
		}
		var stop errStopped
		if errors.As(err, &stop) {
			n.failApply(stop.err)
			return
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			n.failApply(fmt.Errorf("cluster: following stream %q: %w", n.opts.Stream, err))
			return
		}
		var gap errGap
		if errors.As(err, &gap) {
			// The consumer skipped a position. Follow again from the
			// head; a position that stays missing is not in the stream.
			if gaps++; gap.missing != lastGap {
				lastGap, gaps = gap.missing, 1
			}
			if gaps >= 3 {
				n.failApply(fmt.Errorf("cluster: stream %q has no message at position %d: %w", n.opts.Stream, gap.missing, store.ErrCorrupt))
				return
			}
		}
		if n.rep.st.Head() > before {
			backoff = 50 * time.Millisecond
		}
		n.log.Warn("possum: following the stream again", "stream", n.opts.Stream, "from", n.rep.st.Head()+1, "err", err)
		select {
		case <-time.After(backoff):
		case <-n.ctx.Done():
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// errGap: the consumer delivered a position beyond the next one.
type errGap struct{ missing, got uint64 }

func (e errGap) Error() string {
	return fmt.Sprintf("the stream delivered position %d where %d was due", e.got, e.missing)
}

// follow reads the stream from the replica's head + 1 and hands its
// batches to the apply loop, until an error.
func (n *Node) follow() error {
	head := n.rep.st.Head()
	// The consumer recreates itself a few times when its server goes
	// (nats.go's reset, which does not watch the node's context); past
	// that, Next fails and followLoop follows again, watching it.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: orderedResets}
	if head > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, head+1
	}
	cons, err := n.js.OrderedConsumer(n.ctx, n.opts.Stream, cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(applyMaxBytes), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return err
	}
	defer it.Stop()
	next := head + 1
	var open []streamEvent // the batch being read
	var openID string
	openSize := 0
	for {
		msg, err := it.Next(jetstream.NextContext(n.ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := meta.Sequence.Stream
		switch {
		case seq < next:
			continue // delivered again after a reset
		case seq > next:
			return errGap{missing: next, got: seq}
		}
		next++
		if len(open) == 0 && seq <= n.rep.st.Head() {
			// The writer applied this batch already: skip its messages
			// without decoding them.
			continue
		}
		e, mark, err := decodeEvent(n.prefix, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return errStopped{fmt.Errorf("cluster: stream %q position %d: %w: %w", n.opts.Stream, seq, store.ErrCorrupt, err)}
		}
		switch {
		case mark.size > 0 && len(open) > 0:
			return errStopped{fmt.Errorf("cluster: stream %q position %d starts a batch while batch %s lacks %d events: %w", n.opts.Stream, seq, openID, openSize-len(open), store.ErrCorrupt)}
		case mark.size > 0:
			openID, openSize = mark.id, mark.size
		case len(open) == 0 || mark.id != openID:
			return errStopped{fmt.Errorf("cluster: stream %q position %d continues batch %s, which did not start before it: %w", n.opts.Stream, seq, mark.id, store.ErrCorrupt)}
		}
		open = append(open, e)
		if len(open) < openSize {
			continue
		}
		if err := n.handOver(newSpan(seq-uint64(len(open))+1, open)); err != nil {
			return err
		}
		open = nil
	}
}

// handOver queues s for the apply loop.
func (n *Node) handOver(s span) error {
	select {
	case n.spans <- s:
		return nil
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
}

// applyLoop appends what it is handed to the replica, in order.
func (n *Node) applyLoop() {
	held := map[uint64]span{} // by first position
	for {
		if _, ok := held[n.rep.st.Head()+1]; !ok {
			select {
			case s := <-n.spans:
				held[s.first] = s
			case <-n.ctx.Done():
				return
			}
		}
		drain(n.spans, func(s span) { held[s.first] = s })
		if n.stopped() {
			clear(held) // drain, so that no one waits on a loop that applies nothing
			continue
		}
		head := n.rep.st.Head()
		for first, s := range held {
			if s.last() <= head {
				delete(held, first)
			}
		}
		var run []streamEvent
		size := 0
		for next := head + 1; ; {
			s, ok := held[next]
			if !ok || len(run) > 0 && (len(run)+len(s.events) > applyMaxEvents || size+s.size > min(applyMaxBytes, store.MaxAppendSize)) {
				break
			}
			run = append(run, s.events...)
			size += s.size
			delete(held, next)
			next = s.last() + 1
		}
		if len(run) == 0 {
			continue
		}
		err := n.rep.apply(n.ctx, head, run)
		if errors.Is(err, store.ErrClosed) || n.ctx.Err() != nil {
			return
		}
		var unrecorded errUnrecorded
		if errors.As(err, &unrecorded) {
			n.log.Warn("possum: the replica applied lost positions' markers but could not record them in its LOST file", "stream", n.opts.Stream, "dir", n.rep.st.Dir(), "err", unrecorded.err)
			err = nil
		}
		if err != nil {
			n.failApply(fmt.Errorf("cluster: applying positions %d..%d: %w", head+1, head+uint64(len(run)), err))
			continue
		}
		n.stats.applies.Add(1)
		n.stats.appliedEvents.Add(uint64(len(run)))
		n.advance()
	}
}

// stopped reports whether applying has stopped for good.
func (n *Node) stopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applyErr != nil
}

// advance answers the waiters the replica's new head covers and wakes
// those waiting for it to move.
func (n *Node) advance() {
	head := n.rep.st.Head()
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := n.waiters[:0]
	for _, w := range n.waiters {
		if w.pos <= head {
			w.req.done <- w.res
		} else {
			keep = append(keep, w)
		}
	}
	clear(n.waiters[len(keep):])
	n.waiters = keep
	close(n.advanced)
	n.advanced = make(chan struct{})
}

// failApply records why applying stopped and answers every waiter.
func (n *Node) failApply(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.applyErr != nil {
		return
	}
	n.log.Error("possum: the replica stopped applying the stream", "stream", n.opts.Stream, "dir", n.rep.st.Dir(), "err", err)
	n.applyErr = err
	for _, w := range n.waiters {
		w.req.done <- n.unapplied(w)
	}
	n.waiters = nil
	close(n.advanced)
	n.advanced = make(chan struct{})
}

// answerWaiters answers every waiter with its outcome, applied here or
// not: the node is closing, and what the stream committed is known.
func (n *Node) answerWaiters() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.waiters {
		w.req.done <- w.res
	}
	n.waiters = nil
}

// waitApplied waits until the replica has applied pos, applying stops,
// ctx ends or the node closes.
func (n *Node) waitApplied(ctx context.Context, pos uint64) error {
	for {
		n.mu.Lock()
		ch, err := n.advanced, n.applyErr
		n.mu.Unlock()
		if n.rep.st.Head() >= pos {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return store.ErrClosed
		}
	}
}
