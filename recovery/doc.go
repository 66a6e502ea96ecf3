// Package recovery verifies and repairs a possum store directory. The
// command's verify and recover use it; so can any program that holds no
// store open.
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
// Both take the directory's lock (shared for Verify, exclusive for Repair)
// and refuse a store that a writer holds open.
package recovery
