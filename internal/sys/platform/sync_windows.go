package platform

import "os"

// DataSync flushes f's data and metadata and the device's cache
// (FlushFileBuffers).
func DataSync(f *os.File) error { return f.Sync() }

// SyncFS does nothing on Windows: flushing a volume needs administrator
// rights. See the package doc for what that leaves exposed.
func SyncFS(dir string) error { return nil }

// SyncDir does nothing on Windows: FlushFileBuffers needs a handle opened for
// writing, which os.Open of a directory is not, and NTFS journals directory
// changes itself.
func SyncDir(dir string) error { return nil }
