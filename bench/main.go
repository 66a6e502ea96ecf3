// Command bench measures possum against the stores a Go developer would pick
// instead (SQLite and bbolt, each behind the same DCB semantics), with the
// workloads of internal/benchkit/workload, in interleaved rounds.
//
//	cd bench && go run . [--events N] [--rounds R] [--json] [--dir D]
//
// Every store first passes the DCB conformance check (package conformance);
// a store that fails it is reported and not measured. Each round then runs
// every store once per workload, the order of the stores rotated from round
// to round, and measures the disk's raw fsync rate, because a shared
// machine's disk drifts within minutes: read the figures as medians over the
// rounds, with their spread, and as ratios.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/possumstore/possum/bench/conformance"
	"github.com/possumstore/possum/internal/benchkit/rawdisk"
	"github.com/possumstore/possum/internal/benchkit/workload"
)

// config is what one run measures.
type config struct {
	Events  int    `json:"events"`  // events in each read store
	Rounds  int    `json:"rounds"`  // interleaved rounds
	Appends int    `json:"appends"` // conditional appends per run of an append workload
	Batches int    `json:"batches"` // batches of 100 per run
	Reads   int    `json:"reads"`   // queries per run of a read workload
	Dir     string `json:"dir"`
}

// workloadSpec is one row group of the report.
type workloadSpec struct {
	Name string
	Unit string // what the figure counts per second
	// read workloads run on the stores loaded before the rounds; the others
	// on a fresh, durable store each time, and are also reported as a
	// ratio to the raw fsync rate.
	read bool
	run  func(ctx context.Context, cfg config, s workload.Store, loaded *loadedStores) (float64, error)
}

// loadedStores are one peer's read stores, loaded once before the rounds.
type loadedStores struct {
	by10, by1000 workload.Store
	shape        workload.Shape
}

const seed = 1

var workloads = []workloadSpec{
	{"conditional append, 1 writer", "appends/s", false, func(ctx context.Context, cfg config, s workload.Store, _ *loadedStores) (float64, error) {
		return conditional(ctx, s, 1, cfg.Appends)
	}},
	{"conditional append, 64 writers", "appends/s", false, func(ctx context.Context, cfg config, s workload.Store, _ *loadedStores) (float64, error) {
		return conditional(ctx, s, 64, max(1, cfg.Appends*5/64))
	}},
	{"batches of 100", "events/s", false, func(ctx context.Context, cfg config, s workload.Store, _ *loadedStores) (float64, error) {
		r, err := workload.Batches(ctx, s, cfg.Batches, 100, seed, nil)
		return r.EventsPerSec(), err
	}},
	{"read 10 by tag, loaded in appends of 10", "queries/s", true, func(ctx context.Context, cfg config, _ workload.Store, l *loadedStores) (float64, error) {
		r, err := workload.ReadByTag(ctx, l.by10, l.shape, cfg.Reads, nil)
		return r.OpsPerSec(), err
	}},
	{"read 10 by tag, loaded in appends of 1000", "queries/s", true, func(ctx context.Context, cfg config, _ workload.Store, l *loadedStores) (float64, error) {
		r, err := workload.ReadByTag(ctx, l.by1000, l.shape, cfg.Reads, nil)
		return r.OpsPerSec(), err
	}},
	{"newest event of a type", "queries/s", true, func(ctx context.Context, cfg config, _ workload.Store, l *loadedStores) (float64, error) {
		r, err := workload.ReadNewest(ctx, l.by1000, l.shape, cfg.Reads, nil)
		return r.OpsPerSec(), err
	}},
	{"full scan", "events/s", true, func(ctx context.Context, _ config, _ workload.Store, l *loadedStores) (float64, error) {
		r, err := workload.FullScan(ctx, l.by1000, nil)
		return r.EventsPerSec(), err
	}},
}

// conditional runs workload.ConditionalAppend and refuses a run in which a
// condition failed: every writer owns its tag, so a failure is a bug.
func conditional(ctx context.Context, s workload.Store, writers, perWriter int) (float64, error) {
	r, err := workload.ConditionalAppend(ctx, s, writers, perWriter, nil)
	if err == nil && r.Failures > 0 {
		err = fmt.Errorf("%d conditions failed where none can", r.Failures)
	}
	return r.OpsPerSec(), err
}

// summary is one store's figures for one workload over the rounds.
type summary struct {
	Samples []float64 `json:"samples"` // one per round, in round order
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	// PossumRatio is the median over the rounds of possum's figure over
	// this store's figure of the same round (the disk drifts between
	// rounds, far less within one).
	PossumRatio float64 `json:"possum_ratio,omitempty"`
	// PerFsync is the median over the rounds of the figure over that
	// round's raw fsync rate (append workloads only).
	PerFsync float64 `json:"per_raw_fsync,omitempty"`
}

type workloadReport struct {
	Name   string              `json:"name"`
	Unit   string              `json:"unit"`
	Stores map[string]*summary `json:"stores"`
}

type report struct {
	Config      config            `json:"config"`
	NumCPU      int               `json:"nproc"`
	Measured    []string          `json:"measured"`
	Refused     map[string]string `json:"refused,omitempty"` // store → conformance failure
	FsyncPerSec []float64         `json:"raw_fsync_per_sec"` // one per round
	FsyncMedian float64           `json:"raw_fsync_per_sec_median"`
	LoadNote    string            `json:"load_note"`
	Workloads   []workloadReport  `json:"workloads"`
}

const loadNote = "read stores are loaded once, before the rounds, with fsync off (possum NoSync, SQLite synchronous=OFF, bbolt NoSync): " +
	"loading 100k+ events durably in appends of 10 takes SQLite and bbolt many minutes; the read workloads do not write. " +
	"bbolt-batch shares bbolt-update's on-disk layout and read path, so its reads are not measured again."

func main() {
	var cfg config
	var asJSON bool
	flag.IntVar(&cfg.Events, "events", 100_000, "events in each read store (a multiple of 10)")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "interleaved rounds")
	flag.IntVar(&cfg.Appends, "appends", 200, "conditional appends per run with 1 writer (64 writers: 5× as many)")
	flag.IntVar(&cfg.Batches, "batches", 50, "batches of 100 events per run")
	flag.IntVar(&cfg.Reads, "reads", 5000, "queries per run of a read workload")
	flag.StringVar(&cfg.Dir, "dir", ".", "directory to put the stores in (on the disk to measure; a temporary directory is made in it and removed)")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	flag.Parse()
	if cfg.Events <= 0 || cfg.Events%workload.EventsPerTag != 0 || cfg.Rounds <= 0 || cfg.Appends <= 0 || cfg.Batches <= 0 || cfg.Reads <= 0 {
		fmt.Fprintln(os.Stderr, "bench: --events must be a positive multiple of 10; --rounds, --appends, --batches, --reads positive")
		os.Exit(2)
	}
	rep, err := run(context.Background(), cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = printTable(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log io.Writer) (rep *report, err error) {
	root, err := os.MkdirTemp(cfg.Dir, "possum-peers-*")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(root)) }()
	rep = &report{Config: cfg, NumCPU: numCPU(), Refused: map[string]string{}, LoadNote: loadNote}

	// A peer that gets DCB wrong is no peer.
	var measured []peer
	for _, p := range peers {
		fmt.Fprintf(log, "conformance: %s ... ", p.name)
		if err := conformance.Run(ctx, p.durableOpener(), filepath.Join(root, "conformance-"+p.name)); err != nil {
			fmt.Fprintf(log, "FAILED, not measured:\n%v\n", err)
			rep.Refused[p.name] = err.Error()
			continue
		}
		fmt.Fprintln(log, "ok")
		measured = append(measured, p)
		rep.Measured = append(rep.Measured, p.name)
	}
	if len(measured) == 0 {
		return nil, errors.New("no store passed the conformance check")
	}

	loaded := map[string]*loadedStores{}
	defer func() {
		for _, l := range loaded {
			for _, s := range []workload.Store{l.by10, l.by1000} {
				if s != nil {
					err = errors.Join(err, s.Close())
				}
			}
		}
	}()
	for _, p := range measured {
		if !p.reads {
			continue
		}
		l := &loadedStores{shape: workload.Shape{Events: cfg.Events, Seed: seed}}
		loaded[p.name] = l
		for _, batch := range []int{10, 1000} {
			dir := filepath.Join(root, fmt.Sprintf("read-%s-by%d", p.name, batch))
			if err := os.Mkdir(dir, 0o750); err != nil {
				return nil, err
			}
			s, err := p.open(dir, false)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			if batch == 10 {
				l.by10 = s
			} else {
				l.by1000 = s
			}
			start := time.Now()
			if _, err := workload.Load(ctx, s, l.shape, batch, nil); err != nil {
				return nil, fmt.Errorf("%s: load: %w", p.name, err)
			}
			fmt.Fprintf(log, "loaded %s: %d events in appends of %d, fsync off, in %s\n", p.name, cfg.Events, batch, time.Since(start).Round(time.Millisecond))
		}
	}

	for _, w := range workloads {
		wr := workloadReport{Name: w.Name, Unit: w.Unit, Stores: map[string]*summary{}}
		for _, p := range measured {
			if !w.read || p.reads {
				wr.Stores[p.name] = &summary{}
			}
		}
		rep.Workloads = append(rep.Workloads, wr)
	}
	for r := range cfg.Rounds {
		fsync, err := rawdisk.FsyncRate(root, time.Second)
		if err != nil {
			return nil, err
		}
		rep.FsyncPerSec = append(rep.FsyncPerSec, fsync)
		fmt.Fprintf(log, "round %d/%d: raw fsync %.0f/s\n", r+1, cfg.Rounds, fsync)
		order := rotate(measured, r)
		for wi, w := range workloads {
			for _, p := range order {
				sum := rep.Workloads[wi].Stores[p.name]
				if sum == nil {
					continue
				}
				v, err := runOne(ctx, cfg, root, r, w, p, loaded[p.name])
				if err != nil {
					return nil, fmt.Errorf("round %d: %s: %s: %w", r+1, w.Name, p.name, err)
				}
				fmt.Fprintf(log, "  %-42s %-13s %12.0f %s\n", w.Name, p.name, v, w.Unit)
				sum.Samples = append(sum.Samples, v)
			}
		}
	}

	rep.FsyncMedian = median(rep.FsyncPerSec)
	for wi, wr := range rep.Workloads {
		possum := wr.Stores["possum"]
		for name, sum := range wr.Stores {
			sum.Median = median(sum.Samples)
			sum.Min, sum.Max = slices.Min(sum.Samples), slices.Max(sum.Samples)
			if !workloads[wi].read {
				sum.PerFsync = medianRatio(sum.Samples, rep.FsyncPerSec)
			}
			if possum != nil && name != "possum" {
				sum.PossumRatio = medianRatio(possum.Samples, sum.Samples)
			}
		}
	}
	fmt.Fprintln(log, "removing the stores (possum's projection is one file per event: this takes a while)")
	return rep, nil
}

// runOne runs w once against p: on a fresh, durable store for the append
// workloads, on p's loaded stores for the reads.
func runOne(ctx context.Context, cfg config, root string, round int, w workloadSpec, p peer, l *loadedStores) (v float64, err error) {
	if w.read {
		return w.run(ctx, cfg, nil, l)
	}
	dir := filepath.Join(root, fmt.Sprintf("write-%s-%d", p.name, round))
	if err := os.Mkdir(dir, 0o750); err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	s, err := p.open(dir, true)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	return w.run(ctx, cfg, s, nil)
}

// rotate returns ps starting at index r mod len(ps).
func rotate(ps []peer, r int) []peer {
	k := r % len(ps)
	return append(slices.Clone(ps[k:]), ps[:k]...)
}

// medianRatio is the median of a[i]/b[i] over the rounds where b[i] > 0.
func medianRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func printTable(w io.Writer, rep *report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events per read store, %d rounds, nproc %d; raw fsync (4 KiB write + fdatasync) median %.0f/s, per round %s\n",
		rep.Config.Events, rep.Config.Rounds, rep.NumCPU, rep.FsyncMedian, formatRates(rep.FsyncPerSec))
	fmt.Fprintf(&b, "Note: %s\n", rep.LoadNote)
	b.WriteString("÷ raw fsync and possum × are medians over the rounds of ratios taken within each round.\n")
	for name, why := range rep.Refused {
		fmt.Fprintf(&b, "NOT MEASURED: %s failed the DCB conformance check: %s\n", name, why)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tstore\tmedian\tmin\tmax\tunit\t÷ raw fsync\tpossum ×\t")
	for _, wr := range rep.Workloads {
		for _, name := range rep.Measured {
			sum := wr.Stores[name]
			if sum == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t\n", wr.Name, name, sum.Median, sum.Min, sum.Max, wr.Unit, ratio(sum.PerFsync), ratio(sum.PossumRatio))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ratio(x float64) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", x)
}

func formatRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}
