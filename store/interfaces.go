package store

import (
	"context"
	"iter"

	"github.com/possumstore/possum/dcb"
)

// The interfaces every possum store shares, declared here once: a *Store,
// a *Follower, the Go client of a served store (package client) and a node
// of a store on NATS JetStream (package cluster). Code written against them
// runs in the writing process, in any other, or on any machine.

// Reader reads a store's events: what every DCB store offers.
type Reader interface {
	// Read yields the events matching q in position order (newest first
	// with o.Backwards), as a snapshot that holds every append
	// acknowledged before the call, never part of one; an error is the
	// last pair of the sequence (see Store.Read).
	Read(ctx context.Context, q dcb.Query, o ReadOptions) iter.Seq2[dcb.SequencedEvent, error]
}

// Events reads and follows the acknowledged events of a store.
type Events interface {
	Reader
	// Subscribe yields the events matching q after position after, then
	// each new one as it is acknowledged (see Store.Subscribe).
	Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error]
	// HeadContext returns the last acknowledged position, 0 when the
	// store is empty: a Read called after it returns sees every event up
	// to that position. It may do I/O (a follower reads the WAL's offsets
	// file, a client asks its server), so it can fail, and ctx bounds it;
	// it fails with ErrClosed once the reader is closed. (A *Store also
	// has Head, which is in memory and never fails.)
	HeadContext(ctx context.Context) (uint64, error)
}

// Appender appends events.
type Appender interface {
	// Append appends events as one atomic unit unless cond fails (then
	// it writes nothing and returns an error wrapping
	// dcb.ErrAppendConditionFailed), and returns the position of the last
	// one once it is durable (see Store.Append).
	Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error)
}

// EventStore is a store one reads, follows and appends to: what a decision
// model decides with (package decision) and what a server serves (package
// server).
type EventStore interface {
	Events
	Appender
}

var (
	_ EventStore = (*Store)(nil)
	_ Events     = (*Follower)(nil)
)
