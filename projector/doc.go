// Package projector materializes the WAL as plain files any program can
// read: one JSON file per event, an append-only index file per type and per
// tag, and a checkpoint saying how far all of that is durable.
//
// A Projector is a goroutine that tails the WAL. It never blocks an append:
// it reads what the writer already made durable, in batches, and advances
// Projected as it goes. Every event file is written in tmp/ and renamed into
// events/, so a watcher of events/ only ever sees whole files, each once.
// Index files only grow (O(1) per position). The projection is derived data
// and is not fsync'd file by file: before writing the checkpoint the
// projector syncs the file system, then writes the checkpoint atomically.
//
// Open brings a projection back in step with the WAL after an unclean stop:
// it trims index files to the checkpoint, rebuilds them from the WAL when
// they do not add up, removes event files beyond the WAL's head, rewrites
// missing ones, and replays everything after the checkpoint.
//
// It is part of possum's engine, under package store: store is the API,
// with the stability promises; this package has none, and its exported
// names serve the packages of this module.
package projector
