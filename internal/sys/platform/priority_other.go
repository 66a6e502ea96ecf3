//go:build !linux

package platform

// LowerThreadPriority does nothing outside Linux: darwin's per-thread
// background band also throttles the thread's I/O, which the projector
// cannot afford, and Windows needs a thread handle x/sys does not expose.
func LowerThreadPriority(nice int) error { return nil }
