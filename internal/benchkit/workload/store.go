// Package workload holds the benchmark workloads that `possum bench` runs
// against possum and that the peer benchmark module (bench/) runs against
// possum and the stores a Go developer would pick instead, so that every
// store is measured by the same code.
//
// It is internal/benchkit, the benchmarks' kit: used by possum bench and by
// the peer benchmark module (bench/), never by the store.
package workload

import (
	"context"
	"iter"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// Store is what a workload needs of a DCB event store: the subset of
// *store.Store's methods every peer implements with the same semantics.
type Store interface {
	// Append appends events atomically, failing with an error wrapping
	// dcb.ErrAppendConditionFailed when cond is not nil and an event matching
	// cond.FailIfEventsMatch exists after cond.After. It returns the last
	// position once durable.
	Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error)
	// Read yields the events matching q in position order (newest first when
	// o.Backwards), as store.Store.Read does.
	Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error]
	// Head returns the last position, 0 when empty.
	Head() uint64
	// Close releases the store.
	Close() error
}

var _ Store = (*store.Store)(nil)
