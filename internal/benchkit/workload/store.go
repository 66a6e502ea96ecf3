// Package workload holds the benchmark workloads that `possum bench` runs
// against possum and that the peer benchmark module (bench/) runs against
// possum and the stores a Go developer would pick instead, so that every
// store is measured by the same code.
//
// It is internal/benchkit, the benchmarks' kit: used by possum bench and by
// the peer benchmark module (bench/), never by the store.
package workload

import (
	"github.com/possumstore/possum/store"
)

// Store is what a workload needs of a DCB event store: the subset of
// *store.Store's methods every peer implements with the same semantics.
type Store interface {
	store.Appender
	store.Reader
	// Head returns the last position, 0 when empty.
	Head() uint64
	// Close releases the store.
	Close() error
}

var _ Store = (*store.Store)(nil)
