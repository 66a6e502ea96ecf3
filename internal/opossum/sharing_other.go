//go:build !windows

package opossum

// sharingViolation is false: outside Windows, .NET's FileShare.None is an
// flock, and a held one makes platform.Lock fail, not the open.
func sharingViolation(error) bool { return false }
