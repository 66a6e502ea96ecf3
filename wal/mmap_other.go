//go:build !(linux || darwin)

package wal

import (
	"errors"
	"os"
)

// canMap is false here: Windows would grow a file to the size of a mapping
// made past its end, which a growing tail segment needs, so segments are read
// with positional reads (as on any platform where mapping is not wired).
const canMap = false

func mapFile(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapFile([]byte) error { return nil }
