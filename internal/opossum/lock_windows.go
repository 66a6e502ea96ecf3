package opossum

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// sharingViolation reports whether err is the refusal to open a file
// another handle holds with FileShare.None: Opossum holding its lock.
func sharingViolation(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION)
}

// canWaitForLock is false: Opossum's lock on Windows is a sharing mode,
// which nothing can wait for; lockStore polls.
const canWaitForLock = false

func waitForLock(*os.File) error { return errors.ErrUnsupported }
