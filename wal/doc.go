// Package wal is possum's write-ahead log, the store's source of truth, and
// the only package that touches WAL files.
//
// It keeps its segments with github.com/tidwall/wal and adds what that library
// lacks: every record carries a format version, its length and an xxhash64
// checksum; Open tells a torn tail (repaired: the segment is copied aside and
// cut back to the last good record) from damage in the middle of the log
// (refused, naming segment and offset); any write or fsync error poisons the
// log until it is reopened; the directory is fsync'd after a segment roll; and
// records are read through an offset index, never with tidwall's Read (which
// loads a whole segment per miss and races under concurrent use).
//
// Reads: on 64-bit Linux and macOS a Reader reads segments through read-only
// shared memory mappings (one per segment, at least the segment size long,
// so the growing tail segment needs no new one), elsewhere, or where a
// mapping fails, with positional reads. Either way an event costs one copy of
// its own entry into memory the event then owns (its strings alias it), a
// checksum of that copy, and no syscall when mapped. Close unmaps under the
// log's lock, after the reads in progress; a read after it gets ErrClosed.
//
// One record holds the events of one append, so an append survives a crash
// whole or not at all.
//
// Repair (and its dry run, PlanRepair) is for damage that is no torn tail:
// it loses exactly the events whose bytes fail their own checksums and
// that no other copy repairs, keeping each of their positions with a lost
// marker, and every other event with its position and its bytes.
//
// # On-disk format
//
// A WAL directory holds tidwall/wal segment files named by the 20-digit,
// zero-padded index of their first entry (00000000000000000001, ...). A
// segment is a sequence of entries, each a uvarint length n followed by n
// bytes: one possum frame.
//
//	frame:
//	  offset size  field
//	  0      1     format version: 3 (written), 2 and 1 (still read)
//	  1      4     payload length p, little-endian uint32
//	  5      8     xxhash64 (seed 0) of bytes [0,5) followed by the payload,
//	               little-endian uint64
//	  13     p     payload
//
//	payload (versions 2 and 3), little-endian; n events:
//	  0      8     position of the record's first event
//	  8      4     n
//	  12     4n    per event i: the payload offset where entry i ends; entry 0
//	               starts at 12+4n, entry i where entry i-1 ends
//	  12+4n        the entries
//	entry (version 3):
//	  0      8     xxhash64 of the event's position (8 bytes) followed by
//	               bytes [8, end) of the entry
//	  8      8     the event's timestamp, Unix nanoseconds (UTC)
//	  16     1     flags: 0, or 0x01 for a lost marker (any other bit is
//	               damage)
//	  17           body, then the ID: uvarint length, bytes (0: none)
//	a lost marker keeps the position of an event a repair could not keep:
//	timestamp 0, and a body of the type and tags still known ("" and none
//	when unknown), no data, no metadata, no ID
//	entry (version 2): checksum, the record's timestamp, body (no flags, no ID)
//	body (every version), uvarints are unsigned LEB128 as in encoding/binary:
//	  uvarint length, bytes   type
//	  uvarint tag count, then per tag: uvarint length, bytes
//	  uvarint length, bytes   data (JSON; length 0: no data)
//	  uvarint metadata count, then per entry (keys in byte order):
//	    uvarint length, bytes key; uvarint length, bytes value
//
//	payload (version 1):
//	  uvarint  position of the record's first event
//	  8 bytes  timestamp, Unix nanoseconds, little-endian int64 (UTC)
//	  uvarint  number of events
//	  per event: the body
//
// The frame checksum covers the record: scans (Open, Verify) check it. A
// version 2 or 3 entry's own checksum lets a Reader read one event of a large
// record alone: the frame's version byte, two offsets and the entry, nothing
// of the other events. Versions mostly come in order (older records first),
// but a repair rewrites a damaged older record that lost events as version 3,
// so a Reader takes each record's version from its frame.
//
// A frame whose uvarint length, version, payload length or checksum does not
// hold is damage. Damage followed by no valid frame up to the end of the last
// segment is a torn tail; anything else is corruption.
//
// It is part of possum's engine, under package store: store is the API,
// with the stability promises; this package has none, and its exported
// names serve the packages of this module.
package wal
