//go:build !windows

package server

import "syscall"

// openFileLimit returns the process's limit on open files (the soft
// RLIMIT_NOFILE).
func openFileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
