// Package opossum reads the stores of Opossum, the .NET file-system event
// store possum descends from, so that `possum import-opossum` can carry them
// into possum stores. It reads and never writes: the only thing it does to
// an Opossum store is hold Opossum's own cross-process lock (.store.lock)
// for the moment it takes a snapshot, when the store has one.
//
// The format was read from Opossum's public source (majormartintibor/Opossum,
// src/Opossum/Storage/FileSystem and src/Opossum/Core, from its first store
// in commit bc7a12c up to 0.5.0-preview.1 and commit 4e2881b); docs/OPOSSUM.md
// lists the layouts covered and how every field maps. In short, a context
// directory holds
//
//	.ledger                       {"LastSequencePosition": N, "EventCount": N}, or empty
//	.store.lock                   Opossum's cross-process lock (0.4.0 and later)
//	events/NNNNNNNNNN.json        one event a file, position zero-padded to 10 digits
//	Indices/EventType/<type>.json {"Positions": [...]}: Opossum's index files
//	Indices/Tags/<key>_<value>.json  (index/eventtype, index/tag in the seed),
//	                              read only for positions without an event file
//	Events/, Projections/         created by some versions, or derived: not read
//
// and an event file is
//
//	{"event": {"eventType": "T", "event": {"$type": "...", ...}, "tags": [{"key": "k", "value": "v"}]},
//	 "position": N,
//	 "metadata": {"timestamp": "2026-03-01T10:00:00.1234567+00:00", "correlationId": "...", ...}}
//
// What a caller may rely on:
//   - Find tells a context directory from a root holding several.
//   - Scan takes a snapshot of one context: the positions to import, 1 up to
//     the higher of the ledger and the last event file. Taken under Opossum's
//     lock, it falls between two appends; events appended later are not in it.
//   - Snapshot.Events yields every position of the snapshot in order, each
//     an event or a Problem (no file, a damaged file), never skipping one;
//     the positions a ledger names past the last file come as one Problem.
//   - Snapshot.Lost says what Opossum's index files still know of the
//     positions without an event file: the type and tags of the event that
//     was there, where they say them for certain (see there), for the lost
//     position's marker that keeps the position in possum.
//   - Each event becomes a dcb.SequencedEvent with its position, type, tags,
//     payload bytes, metadata and timestamp as docs/OPOSSUM.md says; the
//     mapping is the function sequenced in event.go.
package opossum
