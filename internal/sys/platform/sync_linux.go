package platform

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DataSync flushes f's data and the metadata needed to read it back
// (fdatasync(2)), retrying on EINTR.
func DataSync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// SyncFS flushes every file of the file system holding dir (syncfs(2)).
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("platform: syncfs: %w", err)
	}
	defer d.Close()
	for {
		err = unix.Syncfs(int(d.Fd()))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("platform: syncfs %s: %w", dir, err)
	}
	return nil
}
