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
// its ID and its timestamp, which the store keeps as given.
func toStore(e streamEvent) dcb.Event {
	return e.Event
}

// errLostMarker: the stream holds a lost position's marker, which this
// store cannot hold yet.
//
// TODO(issue 20): append the marker as the store's own lost position.
var errLostMarker = errors.New("a lost position's marker, which this possum cannot apply yet")

// apply appends events, the stream's positions after+1 onwards, to the
// local store as one append, on the condition that the store holds
// nothing after after: the condition pins the positions, so that an event
// lands at its stream position or not at all.
func (r *replica) apply(ctx context.Context, after uint64, events []streamEvent) error {
	batch := make([]dcb.Event, len(events))
	for i, e := range events {
		if e.Lost {
			return fmt.Errorf("cluster: position %d is %w", after+1+uint64(i), errLostMarker)
		}
		batch[i] = toStore(e)
	}
	last, err := r.st.Append(ctx, batch, &dcb.AppendCondition{FailIfEventsMatch: dcb.All(), After: after})
	if err != nil {
		return err
	}
	if want := after + uint64(len(events)); last != want {
		// The store answered a retry: the stream holds events with the
		// same IDs twice, which no possum node publishes.
		return fmt.Errorf("cluster: the stream's positions %d..%d repeat the events with their ids at positions %d..%d: %w", after+1, want, last-uint64(len(events))+1, last, store.ErrCorrupt)
	}
	return nil
}

// checkAgainst refuses a local store that is not a replica of the stream
// whose message at position pos is e: the store's event at pos must be e.
// It is how a node restarted on its directory, or pointed at another
// stream by mistake, is caught before it applies anything.
func (r *replica) checkAgainst(ctx context.Context, pos uint64, e streamEvent) error {
	for got, err := range r.st.Read(ctx, dcb.All(), store.ReadOptions{From: pos, Limit: 1}) {
		if err != nil {
			return err
		}
		if got.Position != pos {
			break
		}
		if why := differs(toStore(e), got.Event); why != "" {
			return fmt.Errorf("cluster: the store in %s is not a replica of this stream: position %d differs in its %s", r.st.Dir(), pos, why)
		}
		return nil
	}
	return fmt.Errorf("cluster: the store in %s has no event at position %d, its head", r.st.Dir(), pos)
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
