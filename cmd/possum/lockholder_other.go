//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

// lockHolder cannot tell who holds a store's lock on this platform.
func lockHolder(dir string) (h holder, held bool, err error) {
	return holder{}, false, fmt.Errorf("who holds a lock is not known on %s", runtime.GOOS)
}
