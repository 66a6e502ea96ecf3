package main

import (
	"runtime"

	"github.com/possumstore/possum/bench/boltstore"
	"github.com/possumstore/possum/bench/sqlitestore"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
)

// peer is one store the benchmark measures.
type peer struct {
	name string
	// open opens the store in dir; durable false turns off the fsync of
	// each append where the store allows it (used only to load the stores
	// the read workloads measure).
	open func(dir string, durable bool) (workload.Store, error)
	// reads: measure the read workloads (false where another peer has the
	// same on-disk layout and read path).
	reads bool
}

var peers = []peer{
	{"possum", func(dir string, durable bool) (workload.Store, error) {
		return store.Open(dir, &store.Options{NoSync: !durable})
	}, true},
	{"sqlite", func(dir string, durable bool) (workload.Store, error) {
		return sqlitestore.Open(dir, sqlitestore.Options{NoSync: !durable})
	}, true},
	{"bbolt-update", func(dir string, durable bool) (workload.Store, error) {
		return boltstore.Open(dir, boltstore.Options{NoSync: !durable})
	}, true},
	{"bbolt-batch", func(dir string, durable bool) (workload.Store, error) {
		return boltstore.Open(dir, boltstore.Options{Batch: true, NoSync: !durable})
	}, false},
}

// durableOpener returns p's conformance opener: durable, as measured.
func (p peer) durableOpener() func(string) (workload.Store, error) {
	return func(dir string) (workload.Store, error) { return p.open(dir, true) }
}

func numCPU() int { return runtime.NumCPU() }
