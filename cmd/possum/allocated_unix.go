//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// allocated is the space the file system gives a file: its 512-byte blocks.
func allocated(fi fs.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks) * 512, true // int32 on some platforms
}
