//go:build linux || darwin

package wal

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// canMap: segments are read through read-only shared memory mappings. Only
// on 64-bit platforms, where mapping every segment of a large log cannot run
// out of address space.
const canMap = strconv.IntSize == 64

// mapFile maps the first size bytes of f read-only and shared. size may
// exceed the file's length: the pages past its end are not to be touched
// (SIGBUS) until the file has grown over them, and then they show what was
// written, with no new mapping.
func mapFile(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func unmapFile(b []byte) error { return unix.Munmap(b) }
