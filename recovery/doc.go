// Package recovery verifies and repairs a possum store directory. The
// command's verify and recover use it; so can any program, on a store open
// in it or elsewhere (Verify) or on a store no process has open (Repair).
//
// Verify is read-only. It checks every WAL record (framing, checksum, gap-free
// positions), then the projection against the WAL: each event file byte for
// byte, each index file entry for entry, the checkpoint, and stray files. It
// returns a structured Report.
//
// Repair fixes what can be fixed without losing an acknowledged event: it
// cuts a torn WAL tail (keeping a copy), rewrites missing or differing event
// files, rewrites wrong index files, removes stray ones, and writes a fresh
// checkpoint. Damage in the middle of the WAL would lose every later event:
// Repair refuses it with ErrDataLoss, naming the positions at stake, unless
// the operator allows the loss; then it cuts there, keeps the damaged files
// aside and reports exactly which positions were lost.
//
// Repair takes the directory's exclusive lock and refuses a store another
// process has open (ErrLocked). Verify, and a dry run of Repair, take the
// shared lock, so that no writer opens the store while they check it; when
// a writer has it open already, they check beside it without a lock, as a
// follower reads: what the writer had acknowledged when the check began (the
// positions the WAL's offsets file or the checkpoint vouch for), leaving
// alone what it writes meanwhile, and say so (Report.BesideWriter). A check
// beside a writer that is starting (repairing the projection as it opens)
// or beside a running repair may report what they are changing: run it
// again.
//
// It sits above package store, beside the command: it verifies and repairs
// what the engine packages (wal, projector, indexer) write. Callers branch
// on store's and dcb's errors, and on ErrDataLoss.
package recovery
