package opossum

import (
	"errors"

	"golang.org/x/sys/windows"
)

// sharingViolation reports whether err is the refusal to open a file
// another handle holds with FileShare.None: Opossum holding its lock.
func sharingViolation(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION)
}
