//go:build unix

package platform

import (
	"fmt"
	"os"
)

// SyncDir makes dir's entries durable: fsync(2) of the directory (on darwin
// os.File.Sync is F_FULLFSYNC).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("platform: fsync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("platform: fsync dir %s: %w", dir, err)
	}
	return nil
}
