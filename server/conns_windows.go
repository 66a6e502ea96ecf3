//go:build windows

package server

// openFileLimit: Windows has no limit on open files (handles) per process
// to share.
func openFileLimit() (uint64, bool) { return 0, false }
