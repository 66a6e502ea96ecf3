package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/possumstore/possum/internal/benchkit/rawdisk"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// benchSeed seeds the data and the queries of every run: two runs read the
// same tags of the same events.
const benchSeed = 20261126

// reopenChild is the hidden command the bench runs in a fresh process of
// its own binary to open a store and report what that cost: the time and
// resident memory are then the store's, not the benchmark's.
const reopenChild = "__bench-reopen"

func benchCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	events := fs.Int("events", 1_000_000, "`N` events in each read store; with --scale, events appended, 10000000 unless given")
	dir := fs.String("dir", "", "make the stores in a temporary directory under `D` (\"\": the current directory), removed afterwards")
	asJSON := fs.Bool("json", false, "print the results as one JSON document")
	scale := fs.Bool("scale", false, "append the events durably and report the append rate per tenth of them, reopen time and memory at a tenth and at the end")
	return func(args []string, stdout, stderr io.Writer) error {
		n := *events
		eventsSet := false
		fs.Visit(func(f *flag.Flag) { eventsSet = eventsSet || f.Name == "events" })
		if *scale && !eventsSet {
			n = 10_000_000
		}
		if n < 1000 || n%workload.EventsPerTag != 0 {
			return fmt.Errorf("--events %d: want at least 1000 and a multiple of %d", n, workload.EventsPerTag)
		}
		parent := *dir
		if parent == "" {
			parent = "."
		} else if err := os.MkdirAll(parent, 0o750); err != nil {
			return err
		}
		root, err := os.MkdirTemp(parent, "possum-bench-*")
		if err != nil {
			return err
		}
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
		// An interrupt stops the workloads, and the stores are removed all
		// the same.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		b := &bench{ctx: ctx, root: root, n: n, asJSON: *asJSON, stderr: stderr,
			start: time.Now(), rawTime: min(time.Second, max(100*time.Millisecond, time.Duration(n)*5*time.Microsecond))}
		b.bars = isTerminal(stderr)
		b.report.Events = n
		b.report.Dir = root
		b.report.Machine = benchMachine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
		if *scale {
			err = b.runScale()
		} else {
			err = b.run()
		}
		b.report.ElapsedSeconds = time.Since(b.start).Seconds()
		if rerr := os.RemoveAll(root); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(b.report)
		}
		b.report.print(stdout)
		return nil
	}
}

// bench is one run of the command.
type bench struct {
	ctx     context.Context
	root    string
	n       int
	asJSON  bool
	bars    bool
	stderr  io.Writer
	start   time.Time
	rawTime time.Duration // how long each raw limit is measured for: 5 µs per event, 0.1 s to 1 s
	report  benchReport
}

// isTerminal says whether w is a terminal: progress bars go there only.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// phase announces a step of the run and returns its progress callback: a
// progress bar of total operations on a terminal, else nothing (a line on
// stderr when the output is the table, so a log shows where a long run is).
func (b *bench) phase(desc string, total int) (workload.Progress, func()) {
	if !b.bars {
		if !b.asJSON {
			fmt.Fprintf(b.stderr, "possum bench: %6.1fs %s\n", time.Since(b.start).Seconds(), desc)
		}
		return nil, func() {}
	}
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(b.stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-34s", desc)), progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
	return func(n int) { _ = bar.Add(n) }, func() { _ = bar.Finish() }
}

func (b *bench) note(format string, args ...any) {
	b.report.Notes = append(b.report.Notes, fmt.Sprintf(format, args...))
}

// raw runs one raw measurement for b.rawTime and records it.
func (b *bench) raw(name, unit, forWhat string, d time.Duration, measure func(time.Duration) (float64, error)) (float64, error) {
	v, err := measure(d)
	if err != nil {
		return 0, err
	}
	b.report.RawLimits = append(b.report.RawLimits, rawLimit{Name: name, Value: v, Unit: unit, Seconds: d.Seconds(), For: forWhat})
	return v, nil
}

// add records a workload next to its limit.
func (b *bench) add(r benchResult, w workload.Result) {
	if r.Limit > 0 {
		r.Ratio = r.Value / r.Limit
	}
	r.Ops, r.Events, r.Failures = w.Ops, w.Events, w.Failures
	r.Seconds = w.Elapsed.Seconds()
	r.P50Micros = float64(w.P50.Nanoseconds()) / 1e3
	r.P99Micros = float64(w.P99.Nanoseconds()) / 1e3
	b.report.Workloads = append(b.report.Workloads, r)
}

// openStore opens a fresh store named name under the run's directory.
func (b *bench) openStore(name string, opts *store.Options) (*store.Store, error) {
	return store.Open(filepath.Join(b.root, name), opts)
}

// done closes s and removes its directory, to keep the run's disk use to
// one store at a time.
func done(s *store.Store) error {
	return errors.Join(s.Close(), os.RemoveAll(s.Dir()))
}

// remove returns a function that removes the directory of s.
func remove(s *store.Store) func() error {
	return func() error { return os.RemoveAll(s.Dir()) }
}

// run runs every workload.
func (b *bench) run() error {
	n := b.n
	for _, c := range []struct {
		writers, perWriter int
		files              bool
	}{
		{1, max(20, n/500), true}, {8, max(10, n/2000), true}, {64, max(5, n/3200), true},
		{64, max(5, n/3200), false},
	} {
		if err := b.conditionalAppend(c.writers, c.perWriter, c.files); err != nil {
			return err
		}
	}
	if err := b.batches(max(10, n/1000)); err != nil {
		return err
	}
	if err := b.readStore(); err != nil {
		return err
	}
	b.note("the read store is loaded with Options.NoSync (durably, its single-event appends would take as many fsyncs); the append workloads are durable")
	b.note("one read store of %d events: its first third appended 1,000 events at a time, the second 10, the rest 1; a tag's 10 events all lie in one third", n)
	return nil
}

// around measures a raw limit for half of b.rawTime before and after f: the
// mean of the two is f's limit, and their difference says how much the
// machine drifted meanwhile. The cleanup f returns (removing its store) runs
// after the second measurement, which it would slow down.
func (b *bench) around(forWhat, name, unit string, measure func(string, time.Duration) (float64, error), f func() (cleanup func() error, err error)) (float64, error) {
	rate := func(d time.Duration) (float64, error) { return measure(b.root, d) }
	before, err := b.raw(name+", before", unit, forWhat, b.rawTime/2, rate)
	if err != nil {
		return 0, err
	}
	cleanup, err := f()
	if err != nil {
		return 0, err
	}
	after, err := b.raw(name+", after", unit, forWhat, b.rawTime/2, rate)
	if err := errors.Join(err, cleanup()); err != nil {
		return 0, err
	}
	return (before + after) / 2, nil
}

// conditionalAppend runs the conditional append workload; without files,
// on a store that materializes no file (Options.Projection).
func (b *bench) conditionalAppend(writers, perWriter int, files bool) error {
	name := fmt.Sprintf("conditional append, %d writer", writers)
	if writers > 1 {
		name += "s"
	}
	var opts *store.Options
	if !files {
		name += ", no projection files"
		opts = &store.Options{Projection: &store.Projection{}}
	}
	var w workload.Result
	limit, err := b.around(name, "fsync (4 KiB write + fdatasync)", "fsync/s", rawdisk.FsyncRate, func() (func() error, error) {
		s, err := b.openStore(fmt.Sprintf("append-%d-%t", writers, files), opts)
		if err != nil {
			return nil, err
		}
		progress, finish := b.phase(name, writers*perWriter)
		w, err = workload.ConditionalAppend(b.ctx, s, writers, perWriter, progress)
		finish()
		return remove(s), errors.Join(err, s.Close())
	})
	if err != nil {
		return err
	}
	if w.Failures > 0 {
		fmt.Fprintf(b.stderr, "possum bench: %s: %d conditions failed, each writer owns its tag: a bug\n", name, w.Failures)
	}
	b.add(benchResult{Name: name, Value: w.OpsPerSec(), Unit: "appends/s", Limit: limit,
		LimitName: "raw fsync/s (4 KiB write + fdatasync), same disk", HigherIsBetter: true,
		Note: "durable, 1 event per append, each on a condition on the writer's own tag"}, w)
	return nil
}

// batches appends batches of 100 events durably. Its limit is the raw
// synced write bandwidth (1 MiB writes + fdatasync) expressed in events/s:
// bandwidth ÷ the bytes the store's WAL took per event. The ratio is thus
// the WAL's write rate over the raw bandwidth.
func (b *bench) batches(count int) error {
	const size = 100
	name := "unconditional batches of 100"
	var w workload.Result
	var walBytes int64
	var backlog uint64
	var closeTime time.Duration
	bandwidth, err := b.around(name, "synced write bandwidth (1 MiB write + fdatasync)", "bytes/s", rawdisk.SyncWriteBandwidth, func() (func() error, error) {
		s, err := b.openStore("batches", nil)
		if err != nil {
			return nil, err
		}
		progress, finish := b.phase(name, count)
		w, err = workload.Batches(b.ctx, s, count, size, benchSeed, progress)
		finish()
		backlog = s.Stats().Lag
		start := time.Now()
		if err = errors.Join(err, s.Close()); err == nil {
			closeTime = time.Since(start)
			walBytes, _, err = walFiles(s.Dir())
		}
		return remove(s), err
	})
	if err != nil {
		return err
	}
	perEvent := float64(walBytes) / float64(w.Events)
	b.add(benchResult{Name: name, Value: w.EventsPerSec(), Unit: "events/s", Limit: bandwidth / perEvent,
		LimitName: fmt.Sprintf("raw synced write bandwidth ÷ %.0f WAL bytes per event", perEvent), HigherIsBetter: true,
		Note: "durable, no condition; ratio = WAL bytes/s ÷ raw synced write bytes/s"}, w)
	fsync, err := b.raw("fsync (4 KiB write + fdatasync)", "fsync/s", "close with a projection backlog", b.rawTime/2, func(d time.Duration) (float64, error) {
		return rawdisk.FsyncRate(b.root, d)
	})
	if err != nil {
		return err
	}
	b.add(benchResult{Name: "close with a projection backlog", Value: closeTime.Seconds(), Unit: "s",
		Limit: 1 + 1/fsync, LimitName: fmt.Sprintf("1 s + one raw fsync (the target: Close never waits for the backlog, here %d events)", backlog),
		Note: fmt.Sprintf("Close right after the batches, %d events not yet projected", backlog)}, workload.Result{Events: int(backlog)})
	return nil
}

// walFiles returns the bytes under a store's wal/ directory and its segment
// files (the files whose names are 20 digits).
func walFiles(storeDir string) (total int64, segments []string, err error) {
	dir := filepath.Join(storeDir, storedir.WALDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return 0, nil, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		total += info.Size()
		if len(e.Name()) == 20 && strings.Trim(e.Name(), "0123456789") == "" {
			segments = append(segments, filepath.Join(dir, e.Name()))
		}
	}
	return total, segments, nil
}

// readStore loads one store of b.n events (NoSync) in three slices of whole
// orders: the first third in appends of 1,000 events, the second in appends
// of 10, the rest in appends of 1, so that reading a tag of a slice reads
// events stored as that slice was appended, from a store of b.n events
// (one projection of b.n files rather than three). It measures the
// projector's pace on the first slice's backlog, the reads, and the reopen.
func (b *bench) readStore() error {
	sh := workload.Shape{Events: b.n, Seed: benchSeed, Interleave: min(workload.DefaultInterleave, b.n/(3*workload.EventsPerTag))}
	block := sh.BlockEvents()
	third := b.n / block / 3 * block
	slices := []struct{ batch, from, to int }{{1000, 0, third}, {10, third, 2 * third}, {1, 2 * third, b.n}}
	fileRate, err := b.raw("file creation (temp write + rename)", "files/s", "projector pace", b.rawTime,
		func(d time.Duration) (float64, error) { return rawdisk.FileCreateRate(b.root, d) })
	if err != nil {
		return err
	}
	s, err := b.openStore("read", &store.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer s.Close()
	for i, sl := range slices {
		layout := fmt.Sprintf("appends of %d", sl.batch)
		progress, finish := b.phase(fmt.Sprintf("load events %d..%d, %s", sl.from+1, sl.to, layout), (sl.to-sl.from+sl.batch-1)/sl.batch)
		loaded, err := workload.LoadRange(b.ctx, s, sh, sl.from, sl.to, sl.batch, progress)
		finish()
		if err != nil {
			return err
		}
		if i > 0 {
			continue
		}
		// The projector writes a file per event and lags behind a fast
		// load: its catch-up on the backlog, alone, is its pace.
		head := s.Head()
		backlog, start := head-s.Stats().Projected, time.Now()
		if err := b.waitProjected(s, "projector catch-up, "+layout, backlog); err != nil {
			return err
		}
		pace := workload.Result{Ops: int(backlog), Events: int(backlog), Elapsed: time.Since(start)}
		note := fmt.Sprintf("catch-up on a backlog of %d events after a load of %d in %s (%s, NoSync)", backlog, head, loaded.Elapsed.Round(time.Millisecond), layout)
		if backlog < head/10 {
			pace = workload.Result{Ops: int(head), Events: int(head), Elapsed: loaded.Elapsed + pace.Elapsed}
			note = fmt.Sprintf("the projector kept up with the load: pace over the whole load of %d events (a lower bound)", head)
		}
		b.add(benchResult{Name: "projector pace", Value: pace.EventsPerSec(), Unit: "events/s", Limit: fileRate,
			LimitName: "raw files/s (200-byte temp write + rename, fresh directory)", HigherIsBetter: true, Note: note}, pace)
	}
	head := s.Head()
	if err := b.waitProjected(s, "projector catch-up", head-s.Stats().Projected); err != nil {
		return err
	}

	walBytes, segments, err := walFiles(s.Dir())
	if err != nil {
		return err
	}
	perEvent := float64(walBytes) / float64(head)
	readSize := max(1, int(perEvent))
	preads, err := b.raw(fmt.Sprintf("random %d-byte preads of the WAL", readSize), "reads/s", "reads", b.rawTime,
		func(d time.Duration) (float64, error) {
			return rawdisk.RandomReadRate(segments, readSize, d, benchSeed)
		})
	if err != nil {
		return err
	}
	for _, sl := range slices {
		layout := fmt.Sprintf("appends of %d", sl.batch)
		w, err := b.reads("read 10 events by tag, "+layout, func(n int, p workload.Progress) (workload.Result, error) {
			return workload.ReadByTagRange(b.ctx, s, sh, sl.from, sl.to, n, p)
		})
		if err != nil {
			return err
		}
		b.add(benchResult{Name: "read 10 events by tag, " + layout, Value: w.OpsPerSec(), Unit: "queries/s", Limit: preads / workload.EventsPerTag,
			LimitName: fmt.Sprintf("raw random %d-byte preads/s of the WAL ÷ 10", readSize), HigherIsBetter: true,
			Note: fmt.Sprintf("random tags of events %d..%d of a %d-event store, loaded in %s", sl.from+1, sl.to, b.n, layout)}, w)
	}

	w, err := b.reads("read newest of a type", func(n int, p workload.Progress) (workload.Result, error) {
		return workload.ReadNewest(b.ctx, s, sh, n, p)
	})
	if err != nil {
		return err
	}
	b.add(benchResult{Name: "read newest of a type", Value: w.OpsPerSec(), Unit: "queries/s", Limit: preads,
		LimitName: fmt.Sprintf("raw random %d-byte preads/s of the WAL", readSize), HigherIsBetter: true,
		Note: "Backwards, Limit 1, a random type of 8 (the newest events were appended one by one)"}, w)

	seq, err := b.raw("sequential read of the WAL", "bytes/s", "full scan, reopen", b.rawTime,
		func(d time.Duration) (float64, error) { return rawdisk.SequentialReadBandwidth(segments, d) })
	if err != nil {
		return err
	}
	progress, finish := b.phase("full scan", int(head))
	w, err = workload.FullScan(b.ctx, s, progress)
	finish()
	if err != nil {
		return err
	}
	b.add(benchResult{Name: "full scan", Value: w.EventsPerSec(), Unit: "events/s", Limit: seq / perEvent,
		LimitName: fmt.Sprintf("raw sequential read bandwidth of the WAL ÷ %.0f bytes per event", perEvent), HigherIsBetter: true}, w)

	if err := s.Close(); err != nil {
		return err
	}
	_, finish = b.phase("reopen in a fresh process", 1)
	r, err := reopenInChild(s.Dir())
	finish()
	if err != nil {
		return err
	}
	b.add(benchResult{Name: "reopen", Value: r.Elapsed.Seconds(), Unit: "s", Limit: float64(walBytes) / seq,
		LimitName: "time to read the WAL once at the raw sequential bandwidth",
		Note:      fmt.Sprintf("the closed %d-event store, opened by a fresh process", b.n)},
		workload.Result{Ops: 1, Elapsed: r.Elapsed})
	if r.RSS > 0 {
		b.add(benchResult{Name: "resident memory after reopen", Value: float64(r.RSS) / (1 << 20), Unit: "MiB",
			Limit: float64(walBytes) / (1 << 20), LimitName: "WAL size on disk, MiB",
			Note: "VmRSS of the fresh process with the store open, after a GC"}, workload.Result{})
	} else {
		b.note("resident memory: unknown on %s (read from /proc/self/status on linux only)", runtime.GOOS)
	}
	_, finish = b.phase("remove the store", 1)
	defer finish()
	return done(s)
}

// waitProjected waits until the projector has caught up with the head of
// s, showing its progress on a backlog of backlog events.
func (b *bench) waitProjected(s *store.Store, desc string, backlog uint64) error {
	progress, finish := b.phase(desc, int(backlog))
	defer finish()
	stop := watchProjection(s, progress)
	defer stop()
	return s.WaitProjected(b.ctx, s.Head())
}

// readProbe is how many reads a read workload makes first, to learn how
// many it can make in its time budget.
const readProbe = 20

// reads runs a read workload for about 2×b.rawTime (2 s at 200k events
// and more, less in a small run): a probe of readProbe reads tells its rate,
// then as many reads as fit in the budget (at least readProbe, at most
// 100,000) are measured. Reads vary more than 100-fold between layouts, so
// a fixed count would take seconds on one and minutes on another.
func (b *bench) reads(desc string, read func(n int, p workload.Progress) (workload.Result, error)) (workload.Result, error) {
	probe, err := read(readProbe, nil)
	if err != nil {
		return workload.Result{}, err
	}
	n := min(100_000, max(readProbe, int(probe.OpsPerSec()*(2*b.rawTime).Seconds())))
	progress, finish := b.phase(desc, n)
	defer finish()
	return read(n, progress)
}

// watchProjection reports the projector's progress to progress until the
// returned function is called.
func watchProjection(s *store.Store, progress workload.Progress) (stop func()) {
	if progress == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := s.Stats().Projected
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p := s.Stats().Projected
				progress(int(p - last))
				last = p
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// reopenInChild opens the closed store in dir in a fresh process of this
// binary (the hidden command reopenChild) and returns what that cost.
func reopenInChild(dir string) (workload.Reopen, error) {
	exe, err := os.Executable()
	if err != nil {
		return workload.Reopen{}, err
	}
	out, err := exec.Command(exe, reopenChild, dir).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return workload.Reopen{}, fmt.Errorf("reopen child: %w: %s", err, exitErr.Stderr)
		}
		return workload.Reopen{}, fmt.Errorf("reopen child: %w", err)
	}
	var r workload.Reopen
	if err := json.Unmarshal(out, &r); err != nil {
		return workload.Reopen{}, fmt.Errorf("reopen child printed %q: %w", out, err)
	}
	return r, nil
}

// runReopenChild is the hidden command: open the store in args[0], print
// what it cost as JSON, close it.
func runReopenChild(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "possum %s: want a store directory\n", reopenChild)
		return 2
	}
	r, s, err := workload.MeasureOpen(func() (workload.Store, error) { return store.Open(args[0], nil) })
	if err == nil {
		err = errors.Join(json.NewEncoder(stdout).Encode(r), s.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "possum %s: %v\n", reopenChild, err)
		return 2
	}
	return 0
}
