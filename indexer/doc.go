// Package indexer holds possum's type and tag indices.
//
// The in-memory Index is the authoritative view for condition checks and
// query planning: a sorted position list per type and per tag, and the type of
// every position. "Does any event matching this query exist after X?" is a
// look at list tails (a leapfrog intersection for items with several tags),
// never a scan of events, and never a file read.
//
// Lists only ever grow at their end, so a reader that took a snapshot (slice
// headers, under a brief read lock) keeps a consistent view while the writer
// goes on appending.
//
// It is part of possum's engine, under package store: store is the API,
// with the stability promises; this package has none, and its exported
// names serve the packages of this module.
package indexer
