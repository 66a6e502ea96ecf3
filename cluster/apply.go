package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/wal"
)

// The applier: one goroutine follows the stream with an ordered consumer
// from the replica's head + 1 and appends what it reads to the replica, in
// order, each JetStream batch whole (a read never sees part of an append).
// While the stream has more waiting it gathers several batches into one
// append of the replica, so that catching up costs one local fsync per
// gathering, not per batch.

// Bounds of one append to the replica while catching up.
const (
	applyMaxEvents = 8192
	applyMaxBytes  = 16 << 20
)

// Pull settings of the applier's consumer: a heartbeat every two seconds,
// so that a server that died under it is noticed in a few.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// errStopped marks an error after which the applier stops for good: the
// stream holds what the replica cannot take, or the replica failed.
type errStopped struct{ err error }

func (e errStopped) Error() string { return e.err.Error() }
func (e errStopped) Unwrap() error { return e.err }

// applier follows the stream until the node closes or the replica cannot
// go on.
func (n *Node) applier() {
	defer close(n.applierDone)
	backoff := 50 * time.Millisecond
	var lastGap uint64
	gaps := 0
	for {
		before := n.rep.st.Head()
		err := n.follow()
		if n.ctx.Err() != nil {
			return
		}
		var stop errStopped
		if errors.As(err, &stop) {
			n.log.Error("possum: the replica stopped applying the stream", "stream", n.opts.Stream, "dir", n.rep.st.Dir(), "err", stop.err)
			n.failApply(stop.err)
			return
		}
		var gap errGap
		if errors.As(err, &gap) {
			// The ordered consumer skipped a position. Follow again from
			// the head; a position that stays missing is not in the stream.
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

// follow applies the stream from the replica's head + 1 until an error.
func (n *Node) follow() error {
	head := n.rep.st.Head()
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if head > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: head + 1}
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
	a := gathering{node: n, head: head}
	for {
		msg, err := it.Next(jetstream.NextContext(n.ctx))
		if err != nil {
			if ferr := a.flush(); ferr != nil {
				return ferr
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if err := a.add(meta.Sequence.Stream, msg); err != nil {
			if ferr := a.flush(); ferr != nil {
				return ferr
			}
			return err
		}
		if len(a.open) == 0 && (meta.NumPending == 0 || len(a.ready) >= applyMaxEvents || a.readyBytes >= applyMaxBytes) {
			if err := a.flush(); err != nil {
				return err
			}
		}
	}
}

// gathering assembles the stream's batches, whole, for the replica.
type gathering struct {
	node *Node
	head uint64 // the replica's head: ready goes at head+1 onwards
	// ready holds whole batches; open the batch being read, of openSize
	// events and id openID.
	ready      []streamEvent
	readyBytes int
	open       []streamEvent
	openID     string
	openSize   int
}

// add takes the message at stream position seq.
func (a *gathering) add(seq uint64, msg jetstream.Msg) error {
	n := a.node
	next := a.head + uint64(len(a.ready)+len(a.open)) + 1
	switch {
	case seq < next:
		return nil // delivered again after a reset
	case seq > next:
		return errGap{missing: next, got: seq}
	}
	e, mark, err := decodeEvent(n.prefix, msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		return errStopped{fmt.Errorf("cluster: stream %q position %d: %w: %w", n.opts.Stream, seq, store.ErrCorrupt, err)}
	}
	switch {
	case mark.size > 0 && len(a.open) > 0:
		return errStopped{fmt.Errorf("cluster: stream %q position %d starts a batch while batch %s lacks %d events: %w", n.opts.Stream, seq, a.openID, a.openSize-len(a.open), store.ErrCorrupt)}
	case mark.size > 0:
		a.openID, a.openSize = mark.id, mark.size
	case len(a.open) == 0 || mark.id != a.openID:
		return errStopped{fmt.Errorf("cluster: stream %q position %d continues batch %s, which did not start before it: %w", n.opts.Stream, seq, mark.id, store.ErrCorrupt)}
	}
	a.open = append(a.open, e)
	if len(a.open) < a.openSize {
		return nil
	}
	size := wal.PayloadSizeBound(events(a.open))
	if a.readyBytes+size > wal.MaxRecordSize {
		if err := a.flush(); err != nil {
			return err
		}
	}
	a.ready = append(a.ready, a.open...)
	a.readyBytes += size
	a.open = a.open[:0]
	return nil
}

// flush appends the ready batches to the replica.
func (a *gathering) flush() error {
	if len(a.ready) == 0 {
		return nil
	}
	n := a.node
	err := n.rep.apply(n.ctx, a.head, a.ready)
	if errors.Is(err, store.ErrClosed) || n.ctx.Err() != nil {
		return err
	}
	if err != nil {
		return errStopped{fmt.Errorf("cluster: applying positions %d..%d: %w", a.head+1, a.head+uint64(len(a.ready)), err)}
	}
	n.stats.applies.Add(1)
	n.stats.appliedEvents.Add(uint64(len(a.ready)))
	a.head += uint64(len(a.ready))
	a.ready, a.readyBytes = a.ready[:0], 0
	n.advance()
	return nil
}

// events returns the events of es as the store will size them.
func events(es []streamEvent) []dcb.Event {
	out := make([]dcb.Event, len(es))
	for i, e := range es {
		out[i] = e.Event
	}
	return out
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

// failApply records why the applier stopped and answers every waiter.
func (n *Node) failApply(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
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

// waitApplied waits until the replica has applied pos, the applier stops,
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
