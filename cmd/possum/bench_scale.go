package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/possumstore/possum/internal/benchkit/rawdisk"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
)

// runScale appends b.n events durably, in batches of 100 by one writer, in
// ten slices, and reports each slice's rate; the store is reopened in a
// fresh process after the first slice and after the last.
func (b *bench) runScale() error {
	const batch = 100
	sh := workload.Shape{Events: b.n, Seed: benchSeed}
	sc := &scaleReport{Batch: batch}
	b.report.Scale = sc
	if _, err := b.raw("fsync (4 KiB write + fdatasync), before", "fsync/s", "scale", b.rawTime,
		func(d time.Duration) (float64, error) { return rawdisk.FsyncRate(b.root, d) }); err != nil {
		return err
	}
	dir := filepath.Join(b.root, "scale")
	s, err := store.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() { s.Close() }()
	slice := b.n / 10
	for k := range 10 {
		from, to := k*slice, (k+1)*slice
		if k == 9 {
			to = b.n
		}
		progress, finish := b.phase(fmt.Sprintf("append events %d..%d", from+1, to), (to-from+batch-1)/batch)
		w, err := workload.LoadRange(b.ctx, s, sh, from, to, batch, progress)
		finish()
		if err != nil {
			return err
		}
		sc.Slices = append(sc.Slices, scaleSlice{From: from + 1, To: to, EventsPerSec: w.EventsPerSec(), Seconds: w.Elapsed.Seconds()})
		if k == 0 || k == 9 {
			if err := s.Close(); err != nil {
				return err
			}
			_, finish := b.phase(fmt.Sprintf("reopen at %d events", to), 1)
			r, err := reopenInChild(dir)
			finish()
			if err != nil {
				return err
			}
			sc.Reopens = append(sc.Reopens, scaleReopen{Events: to, Seconds: r.Elapsed.Seconds(), RSSBytes: r.RSS})
			if k == 0 {
				if s, err = store.Open(dir, nil); err != nil {
					return err
				}
			}
		}
	}
	sc.Flatness = sc.Slices[9].EventsPerSec / sc.Slices[0].EventsPerSec
	if _, err := b.raw("fsync (4 KiB write + fdatasync), after", "fsync/s", "scale", b.rawTime,
		func(d time.Duration) (float64, error) { return rawdisk.FsyncRate(b.root, d) }); err != nil {
		return err
	}
	b.note("durable appends of %d events by one writer, no condition; the projector runs alongside, its lag bounded (Options.MaxProjectionDelay, MaxProjectionLag): appends slow to its pace once it falls that far behind", batch)
	if runtime.GOOS != "linux" {
		b.note("resident memory: unknown on %s (read from /proc/self/status on linux only)", runtime.GOOS)
	}
	return nil
}
