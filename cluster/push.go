package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// Pushing seeds a stream from a single-machine store, so that a store
// outgrows its machine without a migration: every event goes to the
// stream at its own position, with its timestamp and ID, and the store's
// directory then opens as a node's replica, already caught up.

// pushMaxBytes bounds the events of one pushed batch
// (store.StoredSize): a replica applies a batch as one append.
const pushMaxBytes = applyMaxBytes

// PushReport says what Push did.
type PushReport struct {
	Stream string
	// Had is how many events the stream held before, the store's first
	// ones; Pushed, how many Push added after them, in Batches atomic
	// batches; Head, the stream's last position now: the store's head
	// when Push began.
	Had, Pushed, Head uint64
	Batches           int
}

// Push seeds the stream opts name (created when missing, with
// opts.Replicas) with the events of src, a single-machine store (a
// store.Store, or a store.Follower of one that another process runs), up
// to its head when Push begins: the event at position p of src is message
// p of the stream, with its type, tags, data, metadata, timestamp and ID,
// and a lost position's marker (see dcb.SequencedEvent.Lost) is a marker
// there, with the type and tags src knows of it, so that every node's
// replica holds the same marker at the same position (and lists it in its
// LOST file). Of opts, the connection (URL, Conn, NATS), Stream, Subject,
// Replicas, Timeout and Logger apply.
//
// The stream must be empty, or hold src's first events exactly (a push cut
// short, or one made before src grew): Push then adds what follows. It
// refuses anything else, and an event that no atomic batch can carry
// (over the server's max_payload, say), before publishing anything. Push
// must be the stream's only writer while it runs: it publishes in atomic
// batches of up to MaxAppendEvents events, each expecting the stream's
// last position to be the one before its first event, so a node or
// another push appending meanwhile stops it (nothing of the batch
// written). A batch may hold events of several of src's appends, or part
// of one of more than MaxAppendEvents events.
func Push(ctx context.Context, src store.Events, opts *Options) (PushReport, error) {
	if opts == nil {
		return PushReport{}, errors.New("cluster: Options are required (Stream, URL)")
	}
	o := *opts
	if err := o.validate(); err != nil {
		return PushReport{}, err
	}
	rep := PushReport{Stream: o.Stream}
	head, err := src.HeadContext(ctx)
	if err != nil {
		return rep, fmt.Errorf("cluster: push: %w", err)
	}
	if head == 0 {
		return rep, errors.New("cluster: push: the store holds no events")
	}
	n := &Node{opts: o, log: o.Logger, prefix: o.Subject}
	if err := n.connect(ctx); err != nil {
		return rep, err
	}
	if n.ownConn {
		defer n.nc.Close()
	}
	n.ctx = ctx
	// Every event must travel before anything does: a message limit of an
	// existing stream counts too.
	n.maxPayload = int(n.nc.MaxPayload())
	var st jetstream.Stream
	err = whileStarting(ctx, o, func(ctx context.Context) (err error) {
		st, err = n.js.Stream(ctx, o.Stream)
		return err
	})
	if err == nil {
		if m := int(st.CachedInfo().Config.MaxMsgSize); m > 0 && m < n.maxPayload {
			n.maxPayload = m
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return rep, fmt.Errorf("cluster: push: stream %q: %w", o.Stream, err)
	}
	if err := n.pushable(ctx, src, head); err != nil {
		return rep, err
	}
	if n.stream, err = openStream(ctx, n.js, o.Stream, n.prefix, o.Replicas); err != nil {
		return rep, err
	}
	had := n.stream.CachedInfo().State.LastSeq
	if had > head {
		return rep, fmt.Errorf("cluster: push: stream %q holds %d events, the store only %d: it is not a copy of this store", o.Stream, had, head)
	}
	if err := n.checkPrefix(ctx, src, had); err != nil {
		return rep, err
	}
	rep.Had, rep.Head = had, had
	if had == head {
		return rep, nil
	}

	var msgs []*nats.Msg
	size := 0
	flush := func() error {
		h := rep.Head
		id := sealBatch(msgs, h)
		switch out := n.publish(msgs, h, id); out.kind {
		case moved:
			return fmt.Errorf("cluster: push: another writer appended to stream %q after position %d: a push must be its only writer (%d events pushed)", o.Stream, h, rep.Pushed)
		case failed:
			return fmt.Errorf("cluster: push: %w (%d events pushed)", out.err, rep.Pushed)
		}
		rep.Head += uint64(len(msgs))
		rep.Pushed += uint64(len(msgs))
		rep.Batches++
		msgs, size = nil, 0
		return nil
	}
	for e, err := range src.Read(ctx, dcb.All(), store.ReadOptions{From: had + 1}) {
		if err != nil {
			return rep, fmt.Errorf("cluster: push: reading the store: %w (%d events pushed)", err, rep.Pushed)
		}
		if e.Position > head {
			break
		}
		m, err := n.pushMessage(e)
		if err != nil {
			return rep, err
		}
		s := store.StoredSize([]dcb.Event{e.Event})
		if len(msgs) == MaxAppendEvents || len(msgs) > 0 && size+s > pushMaxBytes {
			if err := flush(); err != nil {
				return rep, err
			}
		}
		msgs, size = append(msgs, m), size+s
	}
	if len(msgs) > 0 {
		if err := flush(); err != nil {
			return rep, err
		}
	}
	if rep.Head != head {
		return rep, fmt.Errorf("cluster: push: the store yielded events up to %d, not %d: %w", rep.Head, head, store.ErrCorrupt)
	}
	return rep, nil
}

// pushMessage is the message of e, the store's event at e.Position, for
// a push, without batch headers. A lost position's marker goes as a
// marker (Possum-Lost), with the type and tags the store knows of it, and
// the time it is pushed as its Possum-Time: it has no time of its own, and
// a replica keeps none.
func (n *Node) pushMessage(e dcb.SequencedEvent) (*nats.Msg, error) {
	m, err := encodeEvent(n.prefix, streamEvent{Event: e.Event, Lost: e.Lost})
	if err == nil && e.Lost {
		err = setTime(m, time.Now())
	}
	if err == nil {
		err = checkLimits(m, e.Type, n.maxPayload)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: push: the event at position %d cannot travel in the stream, nothing pushed: %w", e.Position, err)
	}
	return m, nil
}

// pushable checks that every event of src up to head can be published.
func (n *Node) pushable(ctx context.Context, src store.Events, head uint64) error {
	for e, err := range src.Read(ctx, dcb.All(), store.ReadOptions{}) {
		if err != nil {
			return fmt.Errorf("cluster: push: reading the store: %w", err)
		}
		if e.Position > head {
			break
		}
		if _, err := n.pushMessage(e); err != nil {
			return err
		}
	}
	return nil
}

// checkPrefix refuses a stream whose first had messages are not src's
// first had events, exactly.
func (n *Node) checkPrefix(ctx context.Context, src store.Events, had uint64) error {
	if had == 0 {
		return nil
	}
	cons, err := n.js.OrderedConsumer(ctx, n.opts.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("cluster: push: reading stream %q: %w", n.opts.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(applyMaxBytes))
	if err != nil {
		return fmt.Errorf("cluster: push: reading stream %q: %w", n.opts.Stream, err)
	}
	defer it.Stop()
	notCopy := func(pos uint64, why string) error {
		return fmt.Errorf("cluster: push: stream %q holds %d events, and position %d %s: it is not a copy of this store's first events; nothing pushed", n.opts.Stream, had, pos, why)
	}
	for e, err := range src.Read(ctx, dcb.All(), store.ReadOptions{}) {
		if err != nil {
			return fmt.Errorf("cluster: push: reading the store: %w", err)
		}
		if e.Position > had {
			break
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("cluster: push: reading stream %q at position %d: %w", n.opts.Stream, e.Position, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("cluster: push: reading stream %q at position %d: %w", n.opts.Stream, e.Position, err)
		}
		if meta.Sequence.Stream != e.Position {
			return notCopy(e.Position, fmt.Sprintf("came as message %d", meta.Sequence.Stream))
		}
		se, _, err := decodeEvent(n.prefix, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return notCopy(e.Position, fmt.Sprintf("is not possum's layout (%v)", err))
		}
		if why := mismatch(se, e, true); why != "" {
			return notCopy(e.Position, why)
		}
	}
	return nil
}
