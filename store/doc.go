// Package store is possum's public face: Open a store directory, Append
// events under an append condition, Read them back as a snapshot, Subscribe
// to follow new ones, Close.
//
// Append validates its events and condition before anything is written, then
// queues for the single writer goroutine. The writer takes every append that
// is waiting, checks each condition in arrival order against everything
// acknowledged plus the earlier appends of the same group, writes the
// accepted ones to the WAL as one record each with one write and one fsync
// (group commit), and only then answers the callers. Concurrent appends so
// share fsyncs while every condition is still checked in a strict order.
//
// Reads are served from the in-memory index (which positions match) and the
// WAL (their bytes, through an offset index and memory-mapped segments, or
// positional reads where the platform has no mapping). A Read sees
// exactly the appends acknowledged before it was called, never part of one.
//
// One process writes a directory at a time: an exclusive lock on the file
// LOCK; a second writer, in this process or another, gets ErrLocked.
package store
