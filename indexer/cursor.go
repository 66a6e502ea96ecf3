package indexer

import (
	"slices"
	"sort"
)

// Cursor yields matching positions in order. It is not safe for concurrent
// use.
type Cursor struct{ c cursor }

// Next returns the next matching position, or false when there is none.
func (c *Cursor) Next() (uint64, bool) { return c.c.next() }

type cursor interface {
	next() (uint64, bool)
}

type emptyCursor struct{}

func (emptyCursor) next() (uint64, bool) { return 0, false }

// rangeCursor yields every position in [lo, hi].
type rangeCursor struct {
	lo, hi    uint64
	pos       uint64 // next to yield
	backwards bool
	done      bool
}

func (r *rangeCursor) next() (uint64, bool) {
	if r.done || r.pos < r.lo || r.pos > r.hi {
		return 0, false
	}
	p := r.pos
	if r.backwards {
		r.done = p == r.lo
		r.pos--
	} else {
		r.done = p == r.hi
		r.pos++
	}
	return p, true
}

// listCursor walks a sorted position list within bounds.
type listCursor struct {
	list      []uint64 // already cut to [from, to]
	i         int      // next index to yield (from the end when backwards)
	backwards bool
}

func newListCursor(list []uint64, from, to uint64, backwards bool) *listCursor {
	lo := sort.Search(len(list), func(i int) bool { return list[i] >= from })
	hi := sort.Search(len(list), func(i int) bool { return list[i] > to })
	c := &listCursor{list: list[lo:hi:hi], backwards: backwards}
	if backwards {
		c.i = len(c.list) - 1
	}
	return c
}

func (c *listCursor) next() (uint64, bool) {
	if c.i < 0 || c.i >= len(c.list) {
		return 0, false
	}
	p := c.list[c.i]
	if c.backwards {
		c.i--
	} else {
		c.i++
	}
	return p, true
}

// seek moves to the first position at or past target in the cursor's
// direction and returns it without consuming it. It gallops (probes 1, 2, 4,
// ... entries ahead, then binary-searches the last step), so a run of small
// steps costs what a merge would and a long jump costs a logarithm.
func (c *listCursor) seek(target uint64) (uint64, bool) {
	if c.backwards {
		if c.i < 0 {
			return 0, false
		}
		// the largest index <= c.i whose position <= target
		if c.list[c.i] > target {
			step, lo := 1, c.i
			for lo >= 0 && c.list[lo] > target {
				lo, step = c.i-step, step*2
			}
			// c.list[lo] <= target (or lo < 0) and every index in
			// (lo, c.i] holds a position > target, up to the last probe.
			from := max(lo, -1) + 1
			j := from + sort.Search(c.i-from+1, func(k int) bool { return c.list[from+k] > target })
			c.i = j - 1
		}
		if c.i < 0 {
			return 0, false
		}
		return c.list[c.i], true
	}
	if c.i >= len(c.list) {
		return 0, false
	}
	if c.list[c.i] < target {
		step, hi := 1, c.i
		for hi < len(c.list) && c.list[hi] < target {
			hi, step = c.i+step, step*2
		}
		to := min(hi, len(c.list)-1)
		c.i += sort.Search(to-c.i+1, func(k int) bool { return c.list[c.i+k] >= target })
	}
	if c.i >= len(c.list) {
		return 0, false
	}
	return c.list[c.i], true
}

// seeker is a cursor that can also jump: seek moves to the first position at
// or past target in the cursor's direction and returns it without consuming
// it; next consumes it.
type seeker interface {
	cursor
	seek(target uint64) (uint64, bool)
}

// intersection yields positions present in every list (an item's tags and,
// as one more list, its types) by leapfrogging: each list seeks to the
// current candidate with a binary search, so the rarest list bounds the work.
type intersection struct {
	lists     []seeker
	backwards bool
}

func (x *intersection) next() (uint64, bool) {
	cand, ok := x.lists[0].seek(pick(x.backwards, ^uint64(0), 0))
	if !ok {
		return 0, false
	}
	for agreed := false; !agreed; {
		agreed = true
		for _, l := range x.lists {
			p, ok := l.seek(cand)
			if !ok {
				return 0, false
			}
			if p != cand {
				cand, agreed = p, false
				break
			}
		}
	}
	for _, l := range x.lists {
		l.next()
	}
	return cand, true
}

// typeUnion is the union of an item's type lists, as a seeker.
type typeUnion struct {
	lists     []*listCursor
	backwards bool
}

func (u *typeUnion) seek(target uint64) (uint64, bool) {
	best, found := uint64(0), false
	for _, l := range u.lists {
		if p, ok := l.seek(target); ok && (!found || (u.backwards && p > best) || (!u.backwards && p < best)) {
			best, found = p, true
		}
	}
	return best, found
}

func (u *typeUnion) next() (uint64, bool) {
	p, ok := u.seek(pick(u.backwards, ^uint64(0), 0))
	if !ok {
		return 0, false
	}
	for _, l := range u.lists {
		if q, ok := l.seek(p); ok && q == p {
			l.next()
		}
	}
	return p, true
}

// typeFilter keeps the positions whose event type is one of types (an item's
// types, OR'd, AND'd with its tags), looking each one up: cheaper than a
// leapfrog when the types are at least as common as the tags.
type typeFilter struct {
	c      cursor
	typeOf []uint32
	types  []uint32
}

func (f *typeFilter) next() (uint64, bool) {
	for {
		p, ok := f.c.next()
		if !ok {
			return 0, false
		}
		if slices.Contains(f.types, f.typeOf[p-1]) {
			return p, true
		}
	}
}

// union merges cursors (a query's items, OR'd, or an item's types), yielding
// each position once.
type union struct {
	cs        []cursor
	heads     []uint64
	live      []bool
	backwards bool
}

func newUnion(cs []cursor, backwards bool) *union {
	u := &union{cs: cs, heads: make([]uint64, len(cs)), live: make([]bool, len(cs)), backwards: backwards}
	for i, c := range cs {
		u.heads[i], u.live[i] = c.next()
	}
	return u
}

func (u *union) next() (uint64, bool) {
	best, found := uint64(0), false
	for i, h := range u.heads {
		if u.live[i] && (!found || (u.backwards && h > best) || (!u.backwards && h < best)) {
			best, found = h, true
		}
	}
	if !found {
		return 0, false
	}
	for i, h := range u.heads {
		if u.live[i] && h == best {
			u.heads[i], u.live[i] = u.cs[i].next()
		}
	}
	return best, true
}
