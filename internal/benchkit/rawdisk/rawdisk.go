package rawdisk

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/possumstore/possum/internal/sys/platform"
)

// fsyncBlock is the size of each write of FsyncRate.
const fsyncBlock = 4 << 10

// smallFileSize is the size of each file FileCreateRate writes, about a JSON
// projection of one event.
const smallFileSize = 200

const sampleJSON = `{"type":"StudentSubscribed","position":1,"timestamp":"2026-11-26T10:00:00Z","tags":["course:c1","student:s1"],"data":{"at":"2026-11-26"}}`

// FsyncRate writes 4 KiB blocks one after another at a growing offset of a new
// file in dir (as a log does) and fdatasyncs after each one, for about d
// (at least one round trip), and returns the round trips per second. The file
// is removed before it returns.
func FsyncRate(dir string, d time.Duration) (perSec float64, err error) {
	n, elapsed, err := syncedWrites(dir, fsyncBlock, d)
	if err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// syncBandwidthBlock is the size of each write of SyncWriteBandwidth.
const syncBandwidthBlock = 1 << 20

// SyncWriteBandwidth writes 1 MiB blocks one after another at a growing
// offset of a new file in dir and fdatasyncs after each one, for about d (at
// least one block), and returns the bytes written per second: the ceiling
// of a log that appends large records durably. The file is removed before
// it returns.
func SyncWriteBandwidth(dir string, d time.Duration) (bytesPerSec float64, err error) {
	n, elapsed, err := syncedWrites(dir, syncBandwidthBlock, d)
	if err != nil {
		return 0, err
	}
	return float64(n) * syncBandwidthBlock / elapsed.Seconds(), nil
}

// syncedWrites writes blocks of size bytes to a new file in dir, each
// followed by an fdatasync, for about d (at least one), and returns how many
// it wrote in how long. The file is removed before it returns.
func syncedWrites(dir string, size int, d time.Duration) (n int64, elapsed time.Duration, err error) {
	f, err := os.CreateTemp(dir, "rawdisk-fsync-*")
	if err != nil {
		return 0, 0, fmt.Errorf("rawdisk: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("rawdisk: %w", cerr)
		}
		if rerr := os.Remove(f.Name()); rerr != nil && err == nil {
			err = fmt.Errorf("rawdisk: %w", rerr)
		}
	}()
	block := make([]byte, size)
	for i := range block {
		block[i] = byte(i)
	}
	start := time.Now()
	for {
		if _, err := f.WriteAt(block, n*int64(size)); err != nil {
			return 0, 0, fmt.Errorf("rawdisk: %w", err)
		}
		if err := platform.DataSync(f); err != nil {
			return 0, 0, fmt.Errorf("rawdisk: fdatasync %s: %w", f.Name(), err)
		}
		n++
		if elapsed := time.Since(start); elapsed >= d {
			return n, elapsed, nil
		}
	}
}

// RandomReadRate reads size bytes at random offsets (seeded) of the given
// files, a file chosen with a probability in proportion to its length, for
// about d (at least one read), and returns the reads per second. The files
// are only read; a store's log just written is in the page cache, so this is
// the rate of positional reads through the kernel, the floor under a read
// of one event.
func RandomReadRate(files []string, size int, d time.Duration, seed uint64) (perSec float64, err error) {
	var open []*os.File
	var sizes []int64
	var total int64
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
		open = append(open, f)
		st, err := f.Stat()
		if err != nil {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
		sizes = append(sizes, st.Size())
		total += st.Size()
	}
	if total < int64(size) || size <= 0 {
		return 0, fmt.Errorf("rawdisk: %d bytes in %d files: too few for reads of %d bytes", total, len(files), size)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	buf := make([]byte, size)
	var n int64
	start := time.Now()
	for {
		off := rng.Int64N(total)
		i := 0
		for off >= sizes[i] {
			off -= sizes[i]
			i++
		}
		if _, err := open[i].ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
		n++
		if elapsed := time.Since(start); elapsed >= d {
			return float64(n) / elapsed.Seconds(), nil
		}
	}
}

// SequentialReadBandwidth reads the given files in order, in 1 MiB reads,
// starting over after the last, for about d (at least one pass), and
// returns the bytes read per second.
func SequentialReadBandwidth(files []string, d time.Duration) (bytesPerSec float64, err error) {
	buf := make([]byte, 1<<20)
	var n int64
	start := time.Now()
	for {
		for _, name := range files {
			read, err := readFile(name, buf)
			if err != nil {
				return 0, err
			}
			n += read
		}
		if elapsed := time.Since(start); elapsed >= d {
			if n == 0 {
				return 0, fmt.Errorf("rawdisk: %d files, no bytes to read", len(files))
			}
			return float64(n) / elapsed.Seconds(), nil
		}
	}
}

// readFile reads the file name through buf and returns its length.
func readFile(name string, buf []byte) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("rawdisk: %w", err)
	}
	defer f.Close()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
	}
}

// FileCreateRate writes small (200-byte) files into a temporary directory
// under dir and renames each into a target directory under dir, without
// fsync, for about d (at least one file), and returns the files per second.
// Both directories are removed before it returns.
//
// The directories are fresh, so a short run measures the cold rate: on ext4
// the first few thousand files of a new directory have been seen to go
// several times slower (about 800/s against 5,000-15,000/s on a shared VM)
// than the files that follow.
func FileCreateRate(dir string, d time.Duration) (perSec float64, err error) {
	root, err := os.MkdirTemp(dir, "rawdisk-files-*")
	if err != nil {
		return 0, fmt.Errorf("rawdisk: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(root); rerr != nil && err == nil {
			err = fmt.Errorf("rawdisk: %w", rerr)
		}
		if err != nil {
			perSec = 0
		}
	}()
	tmp, target := filepath.Join(root, "tmp"), filepath.Join(root, "target")
	if err := errors.Join(os.Mkdir(tmp, 0o750), os.Mkdir(target, 0o750)); err != nil {
		return 0, fmt.Errorf("rawdisk: %w", err)
	}
	body := make([]byte, smallFileSize)
	for i := copy(body, sampleJSON); i < len(body); i++ {
		body[i] = ' ' // JSON whitespace pads it to smallFileSize
	}
	var n int
	start := time.Now()
	for {
		name := strconv.Itoa(n) + ".json"
		src := filepath.Join(tmp, name)
		if err := os.WriteFile(src, body, 0o640); err != nil {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
		if err := os.Rename(src, filepath.Join(target, name)); err != nil {
			return 0, fmt.Errorf("rawdisk: %w", err)
		}
		n++
		if elapsed := time.Since(start); elapsed >= d {
			return float64(n) / elapsed.Seconds(), nil
		}
	}
}
