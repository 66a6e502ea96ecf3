// Package decision writes command handlers the DCB way (https://dcb.events):
// read what a decision depends on, decide, and append on the condition that
// none of it changed in between.
//
// A handler declares the facts it needs as projections. Each Projection is
// a query (which events the fact depends on), an initial state and a fold
// that evolves the state by one event: "how many students has course c1",
// "is the username alice taken", "what is the next invoice number". Add
// registers a projection with a Model and returns a typed handle, so one
// model can hold states of different types without reflection or
// assertions:
//
//	var m decision.Model
//	course := decision.Add(&m, CourseState("c1"))     // *Projected[Course]
//	taken := decision.Add(&m, StudentCourses("s1"))   // *Projected[int]
//	cond, err := m.Build(ctx, s)
//	if course.State().Full() { ... }
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
// The package works against the Store interface (Read and Append), which
// *store.Store satisfies, and so does any client of a remote store with the
// same methods.
package decision
