package indexer

import (
	"fmt"
	"sync"

	"github.com/possumstore/possum/dcb"
)

// UnknownType is the type under which a lost marker whose type is unknown
// is indexed (see dcb.SequencedEvent.Lost): "", which no real event has, so
// that every position still has exactly one type (its index file lists the
// unknown markers). Such a marker might have matched any query: Cursor and
// FirstAfter count it as matching every one. A marker whose type and tags
// are known is indexed under them, as an event.
const UnknownType = ""

// Index maps types and tags to the sorted positions of their events. One
// goroutine adds; any number query.
type Index struct {
	mu        sync.RWMutex
	typeIDs   map[string]uint32
	tagIDs    map[string]uint32
	typeLists [][]uint64 // by type id
	tagLists  [][]uint64 // by tag id
	typeOf    []uint32   // type id of position p at typeOf[p-1]
	ids       eventIDs
}

// New returns an empty Index.
func New() *Index {
	return &Index{typeIDs: map[string]uint32{}, tagIDs: map[string]uint32{}, ids: newEventIDs()}
}

// Head returns the last position added, 0 when empty.
func (x *Index) Head() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return uint64(len(x.typeOf))
}

// Add indexes e at position pos, which must be Head()+1. Tags must already be
// free of duplicates (dcb.Event.Normalized).
func (x *Index) Add(pos uint64, e dcb.Event) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if want := uint64(len(x.typeOf)) + 1; pos != want {
		return fmt.Errorf("indexer: add position %d, expected %d", pos, want)
	}
	id, ok := x.typeIDs[e.Type]
	if !ok {
		id = uint32(len(x.typeLists))
		x.typeIDs[e.Type] = id
		x.typeLists = append(x.typeLists, nil)
	}
	x.typeLists[id] = append(x.typeLists[id], pos)
	x.typeOf = append(x.typeOf, id)
	for _, tag := range e.Tags {
		tid, ok := x.tagIDs[tag]
		if !ok {
			tid = uint32(len(x.tagLists))
			x.tagIDs[tag] = tid
			x.tagLists = append(x.tagLists, nil)
		}
		x.tagLists[tid] = append(x.tagLists[tid], pos)
	}
	if e.ID != "" {
		x.ids.add(e.ID, pos)
	}
	return nil
}

// Types returns every type with its positions; Tags likewise. The slices are
// snapshots the caller must not modify. They serve projection checks and
// statistics.
func (x *Index) Types() map[string][]uint64 { return x.lists(false) }

// Tags returns every tag with its positions (see Types).
func (x *Index) Tags() map[string][]uint64 { return x.lists(true) }

// TagEntries returns the number of positions in all tag lists together.
func (x *Index) TagEntries() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, l := range x.tagLists {
		n += len(l)
	}
	return n
}

// lists reads the fields under the lock: Add grows them.
func (x *Index) lists(tags bool) map[string][]uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ids, lists := x.typeIDs, x.typeLists
	if tags {
		ids, lists = x.tagIDs, x.tagLists
	}
	out := make(map[string][]uint64, len(ids))
	for name, id := range ids {
		l := lists[id]
		out[name] = l[:len(l):len(l)]
	}
	return out
}

// FirstAfter returns the first position greater than after whose event
// matches q, false when there is none: the append-condition check. It sees
// every position added, acknowledged or still pending in the writer's batch.
// A lost marker of unknown type matches every q (see Cursor): the lost event
// might have failed the condition, so the condition fails.
func (x *Index) FirstAfter(q dcb.Query, after uint64) (uint64, bool) {
	if after == ^uint64(0) {
		return 0, false // nothing can lie beyond the largest position
	}
	return x.Cursor(q, after+1, ^uint64(0), false).Next()
}

// Cursor returns the positions in [from, to] that match q, ascending, or
// descending when backwards; to is capped at the current head. The cursor is
// a snapshot: positions added later are not seen. q must be valid.
//
// The positions of UnknownType (lost markers whose type and tags are
// unknown) match every query: they are merged into every query's cursor, as
// one more item, so that a read yields every marker that might have matched
// and a condition fails on it.
func (x *Index) Cursor(q dcb.Query, from, to uint64, backwards bool) *Cursor {
	x.mu.RLock()
	head := uint64(len(x.typeOf))
	to = min(to, head)
	from = max(from, 1)
	if from > to {
		x.mu.RUnlock()
		return &Cursor{c: emptyCursor{}}
	}
	if q.IsAll() {
		x.mu.RUnlock()
		return Range(from, to, backwards)
	}
	typeOf := x.typeOf[:head:head]
	items := make([]cursor, 0, len(q.Items)+1)
	for _, it := range q.Items {
		if c := x.itemCursor(it, typeOf, from, to, backwards); c != nil {
			items = append(items, c)
		}
	}
	if id, ok := x.typeIDs[UnknownType]; ok {
		if c := newListCursor(x.typeLists[id], from, to, backwards); len(c.list) > 0 {
			items = append(items, c)
		}
	}
	x.mu.RUnlock()
	switch len(items) {
	case 0:
		return &Cursor{c: emptyCursor{}}
	case 1:
		return &Cursor{c: items[0]}
	}
	return &Cursor{c: newUnion(items, backwards)}
}

// Range returns a cursor over every position in [from, to]: what a query
// matching every event yields, which needs no index.
func Range(from, to uint64, backwards bool) *Cursor {
	from = max(from, 1)
	if from > to {
		return &Cursor{c: emptyCursor{}}
	}
	return &Cursor{c: &rangeCursor{lo: from, hi: to, pos: pick(backwards, to, from), backwards: backwards}}
}

// itemCursor plans one query item under the read lock; nil means no match.
func (x *Index) itemCursor(it dcb.QueryItem, typeOf []uint32, from, to uint64, backwards bool) cursor {
	var types []uint32
	for _, t := range it.Types {
		if id, ok := x.typeIDs[t]; ok {
			types = append(types, id)
		}
	}
	if len(it.Types) > 0 && len(types) == 0 {
		return nil // none of the types exists
	}
	if len(it.Tags) == 0 {
		lists := make([]cursor, len(types))
		for i, id := range types {
			lists[i] = newListCursor(x.typeLists[id], from, to, backwards)
		}
		if len(lists) == 1 {
			return lists[0]
		}
		return newUnion(lists, backwards)
	}
	lists := make([]seeker, 0, len(it.Tags)+1)
	for _, tag := range it.Tags {
		id, ok := x.tagIDs[tag]
		if !ok {
			return nil // an unknown tag: nothing carries it
		}
		lists = append(lists, newListCursor(x.tagLists[id], from, to, backwards))
	}
	if len(types) > 0 {
		ts := &typeUnion{backwards: backwards}
		typeLen, tagLen := 0, len(lists[0].(*listCursor).list)
		for _, l := range lists {
			tagLen = min(tagLen, len(l.(*listCursor).list))
		}
		for _, id := range types {
			ts.lists = append(ts.lists, newListCursor(x.typeLists[id], from, to, backwards))
			typeLen += len(ts.lists[len(ts.lists)-1].list)
		}
		if typeLen >= tagLen {
			// The tags are the rarer: check each of their matches' type.
			var c cursor = lists[0]
			if len(lists) > 1 {
				c = &intersection{lists: lists, backwards: backwards}
			}
			return &typeFilter{c: c, typeOf: typeOf, types: types}
		}
		// The types are the rarer: they join the intersection as one
		// more leapfrogged list.
		lists = append(lists, ts)
	}
	if len(lists) == 1 {
		return lists[0]
	}
	return &intersection{lists: lists, backwards: backwards}
}

func pick(backwards bool, hi, lo uint64) uint64 {
	if backwards {
		return hi
	}
	return lo
}
