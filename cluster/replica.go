package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// The replica is the node's local possum store. This file is the only one
// that writes to it, through the public store API, and the only one that
// turns the stream's events into the store's and back.

// replica wraps the local store. Only the applier goroutine calls apply.
type replica struct {
	st *store.Store
}

// openReplica opens (creating it when needed) the local store in dir. A
// replica applies at the stream's pace: unless asked otherwise, its
// projection lag is not bounded (the files follow in the background).
func openReplica(dir string, o *store.Options, noSync bool) (*replica, error) {
	var so store.Options
	if o != nil {
		so = *o
	}
	so.NoSync = noSync
	if so.MaxProjectionLag == 0 {
		so.MaxProjectionLag = store.NoProjectionLagBound
	}
	st, err := store.Open(dir, &so)
	if err != nil {
		return nil, err
	}
	return &replica{st: st}, nil
}

// toStore is the event the local store keeps for e: the stream's, with
// its ID and its timestamp, which the store keeps as given; for a lost
// position's marker, its type and tags only (store.AppendLost takes
// nothing else: the message's Possum-Time is when the marker was
// published, not the lost event's time, which no one knows).
func toStore(e streamEvent) dcb.Event {
	if e.Lost {
		return dcb.Event{Type: e.Type, Tags: e.Tags}
	}
	return e.Event
}

// errUnrecorded: markers were applied, but recording them in the
// replica's LOST file failed (see store.AppendLost). The replica holds
// them all the same, so applying goes on; possum verify reports them and
// possum recover records them.
type errUnrecorded struct{ err error }

func (e errUnrecorded) Error() string { return e.err.Error() }
func (e errUnrecorded) Unwrap() error { return e.err }

// apply appends events, the stream's positions after+1 onwards, to the
// local store, each at its stream position or not at all: a run of events
// as one append, on the condition that the store holds nothing after the
// position before the run (the condition pins the positions); a run of
// lost positions' markers with store.AppendLost, which appends only when
// the store's head is the position before the run. Events and markers come in separate appends, so a
// read may see a run of events before the markers that follow it in the
// same stream batch (only a push makes such batches; a node's appends
// hold events only). When only the LOST file's record of markers failed,
// apply goes on and returns an errUnrecorded.
func (r *replica) apply(ctx context.Context, after uint64, events []streamEvent) error {
	var unrecorded error
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].Lost == events[i].Lost {
			j++
		}
		at, run := after+uint64(i), storeEvents(events[i:j])
		want := at + uint64(len(run))
		if events[i].Lost {
			last, err := r.st.AppendLost(ctx, at, run, "a cluster replica applying its stream: positions the stream holds as lost markers (lost where they were first written, and pushed so)")
			switch {
			case err != nil && last == want:
				unrecorded = errors.Join(unrecorded, err)
			case err != nil:
				return err
			}
		} else {
			last, err := r.st.Append(ctx, run, &dcb.AppendCondition{FailIfEventsMatch: dcb.All(), After: at})
			if err != nil {
				return err
			}
			if last != want {
				// The store answered a retry: the stream holds events with
				// the same IDs twice, which no possum node publishes.
				return fmt.Errorf("cluster: the stream's positions %d..%d repeat the events with their ids at positions %d..%d: %w", at+1, want, last-uint64(len(run))+1, last, store.ErrCorrupt)
			}
		}
		i = j
	}
	if unrecorded != nil {
		return errUnrecorded{unrecorded}
	}
	return nil
}

// checkAgainst refuses a local store that is not a replica of the stream
// whose message at position pos is e: the store's event at pos must be e,
// a lost position's marker matching only a marker of the same type and
// tags. It is how a node restarted on its directory, or pointed at
// another stream by mistake, is caught before it applies anything.
func (r *replica) checkAgainst(ctx context.Context, pos uint64, e streamEvent) error {
	for got, err := range r.st.Read(ctx, dcb.All(), store.ReadOptions{From: pos, Limit: 1}) {
		if err != nil {
			return err
		}
		if got.Position != pos {
			break
		}
		if why := mismatch(e, got, false); why != "" {
			return fmt.Errorf("cluster: the store in %s is not a replica of this stream: position %d %s", r.st.Dir(), pos, why)
		}
		return nil
	}
	return fmt.Errorf("cluster: the store in %s has no event at position %d, its head", r.st.Dir(), pos)
}

// mismatch says how the stream's e and got, the store's event at the
// same position, differ, "" when they do not: one is a lost position's
// marker and the other an event, or they differ in a field. Two markers
// are the same when their type and tags are. It speaks of the store's
// event, or of the stream's when ofStream.
func mismatch(e streamEvent, got dcb.SequencedEvent, ofStream bool) string {
	lost, otherLost, other := got.Lost, e.Lost, "the stream"
	if ofStream {
		lost, otherLost, other = e.Lost, got.Lost, "the store"
	}
	switch {
	case lost && !otherLost:
		return "is a lost position's marker, where " + other + " holds an event"
	case otherLost && !lost:
		return "is an event, where " + other + " holds a lost position's marker"
	}
	if why := differs(toStore(e), got.Event); why != "" {
		return "differs in its " + why
	}
	return ""
}

// differs names the first field in which the store's event b differs from
// a, as the store would keep a; "" when none does. Timestamps are compared
// to the nanosecond.
func differs(a, b dcb.Event) string {
	a = a.Normalized()
	switch {
	case a.Type != b.Type:
		return "type"
	case !slices.Equal(a.Tags, b.Tags):
		return "tags"
	case string(a.Data) != string(b.Data):
		return "data"
	case !maps.Equal(a.Metadata, b.Metadata):
		return "metadata"
	case a.ID != b.ID:
		return "id"
	case !a.Timestamp.Equal(b.Timestamp):
		return "timestamp"
	}
	return ""
}
