package platform

import "errors"

// ErrLocked is returned, wrapped, by Lock when another open file holds a
// conflicting lock.
var ErrLocked = errors.New("platform: file locked")
