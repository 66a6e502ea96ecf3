// Package dcb is possum's vocabulary for Dynamic Consistency Boundaries
// (https://dcb.events): the events an application appends, the queries that
// select them, and the condition that guards an append.
//
// Read this package first. It imports nothing of possum's; every other package
// speaks in its types.
//
//   - An Event has a Type, optional Tags, optional JSON Data, optional
//     Metadata, an optional ID (for idempotent appends) and an optional
//     Timestamp (the store sets it when the caller does not). Once stored it
//     becomes a SequencedEvent with a gap-free Position (1, 2, 3, ...).
//   - A Query is a list of QueryItems; an event matches the query when it
//     matches any item. An event matches an item when its type is any of the
//     item's Types (or the item has none) and it carries all of the item's Tags.
//     Matching is exact: case-sensitive, byte for byte, no prefixes.
//   - An AppendCondition fails an append when any event after its After
//     position matches its query. That is the consistency boundary: read the
//     events your decision depends on, note the last position you saw, and
//     append on the condition that nothing relevant happened since.
//   - A lost position (SequencedEvent.Lost) is a marker that a recovery left
//     where an event was damaged beyond repair: the position stays, the
//     content is gone; its type and tags when they were still known, else
//     it might have matched any query, and conditions count it so.
package dcb
