package platform

import "golang.org/x/sys/unix"

// LowerThreadPriority sets the nice value of the calling OS thread
// (setpriority(2) on its thread id). The caller must have called
// runtime.LockOSThread, or another goroutine may inherit the priority.
func LowerThreadPriority(nice int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
