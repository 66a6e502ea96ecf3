// Package rawdisk measures what the machine's storage can do on its own, with
// nothing of possum in the way, so that benchmarks can report possum's speed
// as a ratio of the machine's limits measured in the same run. Absolute
// figures from a shared, noisy machine mean little; "appends/s ÷ raw
// fsyncs/s" measured a moment apart means a lot.
//
//   - FsyncRate: how many "write 4 KiB at the end of a log file, then
//     fdatasync" round trips the file system completes per second. A durable
//     append that waits for its own fsync cannot beat it; group commit beats
//     it by sharing one fsync between concurrent appends.
//   - FileCreateRate: how many "write a small file to a temporary directory,
//     rename it into place" steps (no fsync) complete per second: the cost
//     floor of a projector that keeps one JSON file per event.
//   - SyncWriteBandwidth: bytes per second of "write 1 MiB at the end of a
//     file, then fdatasync": the ceiling of durable appends of large batches.
//   - RandomReadRate and SequentialReadBandwidth: positional reads of a few
//     bytes at random offsets of given files (a store's log), and reading
//     them whole: the floor under reading one event, and under a full scan.
//
// It uses the standard library only.
//
// It is internal/benchkit, the benchmarks' kit: used by possum bench and by
// the peer benchmark module (bench/), never by the store.
package rawdisk
