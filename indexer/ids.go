package indexer

import (
	"maps"

	"github.com/cespare/xxhash/v2"
)

// eventIDs maps event IDs to positions, for idempotent appends. An ID is
// kept as the xxhash64 of its bytes and its position (about 38 bytes of
// memory per ID: BenchmarkIDMemory), not as a string: the caller confirms a match by reading
// the event at the position (Index.ID). The rare ID whose hash another ID
// took first is kept whole in clashes.
type eventIDs struct {
	byHash  map[uint64]uint64
	clashes map[string]uint64
}

func newEventIDs() eventIDs { return eventIDs{byHash: map[uint64]uint64{}} }

// add records id at pos. The store keeps IDs unique, so an ID whose hash is
// taken is another ID: it goes to clashes.
func (ids *eventIDs) add(id string, pos uint64) { ids.addHash(xxhash.Sum64String(id), id, pos) }

// addHash is add with the ID's hash h.
func (ids *eventIDs) addHash(h uint64, id string, pos uint64) {
	if _, taken := ids.byHash[h]; !taken {
		ids.byHash[h] = pos
		return
	}
	if ids.clashes == nil {
		ids.clashes = map[string]uint64{}
	}
	ids.clashes[id] = pos
}

func (ids *eventIDs) count() int { return len(ids.byHash) + len(ids.clashes) }

// ID looks up an event ID. exact: pos holds the event with this ID. Not
// exact: pos holds the event with this ID if any does; the caller confirms
// by reading that event's ID (another ID with the same hash is the only
// other case, and means this ID is not held). ok is false when no event can
// hold it.
func (x *Index) ID(id string) (pos uint64, exact, ok bool) {
	return x.idHash(xxhash.Sum64String(id), id)
}

// idHash is ID with the ID's hash h.
func (x *Index) idHash(h uint64, id string) (pos uint64, exact, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if pos, ok := x.ids.clashes[id]; ok {
		return pos, true, true
	}
	pos, ok = x.ids.byHash[h]
	return pos, false, ok
}

// IDs returns the number of event IDs indexed.
func (x *Index) IDs() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ids.count()
}

// AddID records an event ID at pos, for an index built without the events
// (from the index files) whose IDs are then read from the WAL.
func (x *Index) AddID(id string, pos uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ids.add(id, pos)
}

// idsUpTo returns copies of the ID maps restricted to positions at or
// below upTo, for the snapshot.
func (x *Index) idsUpTo(upTo uint64) (byHash map[uint64]uint64, clashes map[string]uint64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	byHash = maps.Clone(x.ids.byHash)
	maps.DeleteFunc(byHash, func(_, p uint64) bool { return p > upTo })
	clashes = maps.Clone(x.ids.clashes)
	maps.DeleteFunc(clashes, func(_ string, p uint64) bool { return p > upTo })
	return byHash, clashes
}
