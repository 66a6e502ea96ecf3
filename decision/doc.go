// Package decision writes command handlers the DCB way (https://dcb.events):
// read what a decision depends on, decide, and append on the condition that
// none of it changed in between.
//
// A handler declares the facts it needs as projections. A Projection is a
// query (the events the fact depends on), an initial state and a fold that
// evolves the state by one event:
//
//	func studentCourses(student string) decision.Projection[int] {
//		return decision.Projection[int]{
//			Query: dcb.Query{Items: []dcb.QueryItem{{
//				Types: []string{"StudentSubscribedToCourse"},
//				Tags:  []string{"student:" + student},
//			}}},
//			Fold: func(n int, _ dcb.SequencedEvent) (int, error) { return n + 1, nil },
//		}
//	}
//
// Add registers a projection with a Model and returns a typed handle, so one
// model holds states of different types without reflection or type
// assertions:
//
//	var m decision.Model
//	c := decision.Add(&m, courseState("c1"))      // *decision.Projected[course]
//	n := decision.Add(&m, studentCourses("s1"))   // *decision.Projected[int]
//	cond, err := m.Build(ctx, s)
//	if err != nil {
//		return err
//	}
//	if c.State().Subscribers >= c.State().Capacity || n.State() >= 2 {
//		return errRefused
//	}
//	_, err = s.Append(ctx, events, &cond)
//
// Build reads the union of the projections' queries once, in position
// order, and folds every projection over its own matching events only: an
// event that only another projection's query selects never reaches it. It
// returns the AppendCondition that makes the decision safe: fail if any
// event matching the union appears after the last position read. A
// concurrent change to the facts of any projection then fails the append
// with dcb.ErrAppendConditionFailed, while events no projection depends on
// do not get in the way. That is the consistency boundary: exactly as wide
// as the decision, no wider.
//
// A failed condition means the decision was taken on stale facts: build the
// model again and decide again. Retry does that a bounded number of times,
// with jittered backoff, for dcb.ErrAppendConditionFailed only. Declare the
// model inside the function Retry runs, so that every attempt starts from
// fresh states.
//
// The package works against store.Events (Build reads) and
// store.EventStore (Retry's function appends): a *store.Store, a client of a
// served store (package client), and a node of a store on NATS JetStream
// (package cluster) are each.
package decision
