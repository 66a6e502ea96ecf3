//go:build !linux

package rawdisk

import "os"

// datasync falls back to a full fsync where fdatasync is not available
// through the syscall package.
func datasync(f *os.File) error { return f.Sync() }
