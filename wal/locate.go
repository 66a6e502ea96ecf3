package wal

import (
	"sort"
	"sync"
	"sync/atomic"
)

// locStride is how many records one entry of the sparse locate index
// stands for.
const locStride = 64

// locIndex is a sparse index over a Log's records (its locs): the first
// position of every locStride-th record. A lookup searches it (8 bytes per
// 64 records: 160 KB for 1.3M records, which stays in cache), then one
// stride of records (often one look: see find), instead of a binary search
// over every record, whose steps each miss the cache once the records
// outgrow it.
//
// It is derived from locs on the read side, extended by the first lookup
// that finds records it does not cover yet, and relies on locs only ever
// growing at the end (Append) while readers may look.
type locIndex struct {
	firsts atomic.Pointer[[]uint64] // readers load it; only extend stores it
	mu     sync.Mutex               // serialises extend
}

// find returns the index in locs of the record holding pos, len(locs) if
// none does. The caller holds the log's mu read-locked (locs cannot change
// under it).
func (x *locIndex) find(locs []recordLoc, pos uint64) int {
	n := len(locs)
	var firsts []uint64
	if f := x.firsts.Load(); f != nil {
		firsts = *f
	}
	if len(firsts) < (n+locStride-1)/locStride {
		firsts = x.extend(locs)
	}
	// The last stride starting at or below pos holds it, if any does.
	k := sort.Search(len(firsts), func(k int) bool { return firsts[k] > pos }) - 1
	if k < 0 {
		return n
	}
	lo, hi := k*locStride, min((k+1)*locStride, n)
	end := locs[n-1].lastPos() + 1 // the first position after the stride
	if hi < n {
		end = firsts[k+1]
	}
	if pos >= end {
		return n
	}
	// Interpolate: exact when the stride's records hold as many events each
	// (a log appended in batches of one size), one look instead of six.
	g := lo + int((pos-firsts[k])*uint64(hi-lo)/(end-firsts[k]))
	if loc := locs[g]; loc.firstPos <= pos && pos <= loc.lastPos() {
		return g
	}
	i := lo + sort.Search(hi-lo, func(i int) bool { return locs[lo+i].lastPos() >= pos })
	if i == hi {
		return n
	}
	return i
}

// extend makes the index cover every record of locs and returns it.
func (x *locIndex) extend(locs []recordLoc) []uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var firsts []uint64
	if f := x.firsts.Load(); f != nil {
		firsts = *f
	}
	// Entries already published are never changed: readers may hold them.
	for i := len(firsts) * locStride; i < len(locs); i += locStride {
		firsts = append(firsts, locs[i].firstPos)
	}
	x.firsts.Store(&firsts)
	return firsts
}
