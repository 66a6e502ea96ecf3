// Package storedir is the layout of a possum store directory, in one
// place: the names of its files and folders, the writer's lock, the path
// rules of the unix socket a served store listens on, the checkpoint file,
// and the JSON encoding of an event that the event files, possum read's
// NDJSON and the HTTP API all write (one encoder, so the three agree byte
// for byte).
//
// It imports nothing of possum but dcb and the platform layer: every
// package that reads or writes a store directory, from the WAL up to the
// command line, takes the names from here. docs/FORMAT.md describes the
// same, byte by byte, for programs in other languages.
package storedir
