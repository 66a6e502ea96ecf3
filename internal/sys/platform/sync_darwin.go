package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DataSync flushes f's data and metadata to the drive and the drive's cache
// to stable storage (fcntl F_FULLFSYNC), retrying on EINTR. File systems that
// refuse F_FULLFSYNC (ENOTSUP, EINVAL: some network and FUSE mounts) get a
// plain fsync(2), which is all they offer.
func DataSync(f *os.File) error {
	for {
		_, err := unix.FcntlInt(f.Fd(), unix.F_FULLFSYNC, 0)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL):
			return fsync(f)
		}
		return err
	}
}

func fsync(f *os.File) error {
	for {
		err := unix.Fsync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// SyncFS is sync(2), which starts writing every dirty buffer but does not
// wait, then F_FULLFSYNC on dir, which waits for dir and flushes the drive's
// cache. Not a durability guarantee for the other files: see the package doc.
func SyncFS(dir string) error {
	if err := unix.Sync(); err != nil {
		return fmt.Errorf("platform: sync: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("platform: syncfs: %w", err)
	}
	defer d.Close()
	if err := DataSync(d); err != nil {
		return fmt.Errorf("platform: syncfs %s: %w", dir, err)
	}
	return nil
}
