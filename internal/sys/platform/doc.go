// Package platform owns the few operating-system primitives possum's
// durability and locking rest on, one implementation per platform behind
// build tags, so that the rest of possum builds and behaves the same on
// Linux, macOS (darwin) and Windows.
//
// What each platform gives:
//
//	              DataSync             SyncFS                        SyncDir         Lock
//	linux         fdatasync(2)         syncfs(2)                     fsync(2) on dir flock(2)
//	darwin        fcntl F_FULLFSYNC    sync(2) + F_FULLFSYNC on dir  F_FULLFSYNC dir flock(2)
//	windows       FlushFileBuffers     nothing (see below)           nothing         LockFileEx
//
// DataSync is durable on every platform: when it returns nil the file's
// written bytes, and the size needed to read them back, survive a power loss.
// On Linux it is fdatasync (timestamps are not flushed); on darwin plain
// fsync(2) only reaches the drive's volatile cache, so it is F_FULLFSYNC,
// which also flushes the drive (falling back to fsync(2) on file systems that
// refuse it, such as some network mounts); on Windows FlushFileBuffers, which
// flushes the file and the device cache.
//
// SyncFS is durable only on Linux. It exists for the projector's checkpoint:
// one call makes every file written since the last one durable.
//   - darwin has no syncfs. sync(2) starts writing every dirty buffer of
//     every file system but does not wait for the writes (sync(2), BUGS); the
//     F_FULLFSYNC on the directory that follows waits for the directory and
//     flushes the drive's cache, which covers the writes sync(2) finished by
//     then, not those still in flight.
//   - Windows has no cheap equivalent: FlushFileBuffers on a volume handle
//     needs administrator rights and flushes every file of the volume, so
//     SyncFS does nothing; the cache manager's lazy writer writes dirty pages
//     within seconds.
//
// On darwin and Windows, then, a power loss (not a process crash: the
// operating system's cache survives those) shortly after a checkpoint may
// leave projected files the checkpoint covers stale or torn. They are derived
// data: the WAL, synced with DataSync, is unaffected, and `possum verify`
// finds such files and `possum recover` rewrites them from the WAL.
//
// SyncDir makes a directory's entries (a rename, a created or removed file)
// durable. On Windows it does nothing: FlushFileBuffers needs a handle with
// write access, which os.Open of a directory does not give, and NTFS
// journals its metadata itself.
//
// Lock takes a whole-file advisory lock without waiting, shared or
// exclusive. Both flock(2) and LockFileEx locks belong to the open file, so two
// handles in one process exclude each other as two processes do; closing the
// file releases the lock. flock works on a file opened read-only, so a
// read-only copy of a store can still be locked.
//
// LowerThreadPriority lowers the CPU priority of the calling OS thread (the
// caller locks itself to it). Linux only; elsewhere it does nothing.
//
// It is internal/sys, the lowest layer: it imports nothing of possum, and
// every other package may use it.
package platform
