package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

func statsCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print the statistics as one JSON document")
	top := fs.Int("top", 10, "list the `N` most used tags")
	return func(args []string, stdout, stderr io.Writer) error {
		if *top < 0 {
			return fmt.Errorf("--top %d: a count is 0 or more", *top)
		}
		st, err := gatherStats(context.Background(), args[0], *top)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		st.print(stdout)
		return nil
	}
}

// storeStats is what `possum stats` reports, read from outside the writer:
// through a follower, the checkpoint file and the files on disk. What only
// the writer's memory holds (how far its projector got) is null.
//
// Its JSON names are camelCase, as everything possum prints (the HTTP API,
// verify --json), and the facts GET /head reports have its names: head,
// projected, checkpointed, lag, maxLag.
type storeStats struct {
	Dir    string     `json:"dir"`
	Writer writerInfo `json:"writer"`
	Head   uint64     `json:"head"`
	// Checkpointed: the checkpoint file's position; every event at or
	// below it has its event and index files, durably.
	Checkpointed    uint64 `json:"checkpointed"`
	CheckpointError string `json:"checkpointError,omitempty"`
	// Projected and Lag are the writer's (store.Stats); from outside they
	// are known when no process has the store open (the projection stands
	// at the checkpoint, and the next Open projects the rest), or when the
	// process that has it serves it and says (Served). MaxLag, the bound
	// on the lag the writer keeps (store.Options.MaxProjectionLag), is
	// known when it is served.
	Projected *uint64 `json:"projected"`
	Lag       *uint64 `json:"lag"`
	MaxLag    *uint64 `json:"maxLag,omitempty"`
	// LagBound, MaxDelayNs and ProjectionRate: the bound in force, the
	// bound in time and the projector's rate, when it is served.
	LagBound       *uint64  `json:"lagBound,omitempty"`
	MaxDelayNs     *int64   `json:"maxDelayNs,omitempty"`
	ProjectionRate *float64 `json:"projectionRate,omitempty"`
	Served         bool     `json:"served,omitempty"`
	// LagAtMost bounds Lag from what the files say: head − checkpointed.
	LagAtMost uint64  `json:"lagAtMost"`
	Types     []count `json:"types"` // every type, most events first (lost positions apart)
	Tags      int     `json:"tags"`  // distinct tags
	TopTags   []count `json:"topTags"`
	// Lost lists the store's lost positions (events damaged beyond repair,
	// each position kept by a lost marker) as its LOST file records them,
	// merged into ranges; LostEvents counts them, and Losses are the
	// file's lines: when, what and why (possum recover, a copy of another
	// store's markers). LostError: the file cannot be read.
	Lost       []storedir.Range `json:"lost"`
	LostEvents uint64           `json:"lostEvents"`
	Losses     []storedir.Loss  `json:"losses,omitempty"`
	LostError  string           `json:"lostError,omitempty"`
	Disk       disk             `json:"disk"`
}

// writerInfo says which process has the store open, as far as this
// platform can tell.
type writerInfo struct {
	// State: "none", "open" (a writer, or a repair), "verify" (a possum
	// verify), or "unknown".
	State string `json:"state"`
	PID   int    `json:"pid,omitempty"`
	Why   string `json:"why,omitempty"` // when unknown
}

type count struct {
	Name   string `json:"name"`
	Events int    `json:"events"`
}

// disk is the space a store's files take: the WAL (the events), and the
// projection (event files and index files) other programs read.
type disk struct {
	WAL        files `json:"wal"`
	EventFiles files `json:"eventFiles"`
	IndexFiles files `json:"indexFiles"`
}

type files struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"` // their sizes
	// Allocated is the space the file system gives them (whole blocks);
	// null where the platform does not say.
	Allocated *int64 `json:"allocatedBytes"`
}

func gatherStats(ctx context.Context, dir string, top int) (*storeStats, error) {
	f, err := followStore(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st := &storeStats{Dir: dir, Writer: writerOf(dir)}
	types, tags := map[string]int{}, map[string]int{}
	for e, err := range f.Read(ctx, dcb.All(), store.ReadOptions{}) {
		if err != nil {
			return nil, err
		}
		st.Head = e.Position
		if e.Lost {
			continue // counted from LOST
		}
		types[e.Type]++
		for _, t := range e.Tags {
			tags[t]++
		}
	}
	st.Types, st.Tags, st.TopTags = ranked(types, len(types)), len(tags), ranked(tags, top)
	if cp, err := storedir.ReadCheckpoint(dir); err != nil {
		st.CheckpointError = err.Error()
	} else {
		st.Checkpointed = cp.Position
	}
	st.LagAtMost = st.Head - min(st.Head, st.Checkpointed)
	if st.Writer.State == "none" && st.CheckpointError == "" {
		st.Projected, st.Lag = &st.Checkpointed, &st.LagAtMost
	} else if ws, ok := servedStats(dir); ok {
		delay := int64(ws.MaxDelay)
		st.Projected, st.Lag, st.MaxLag, st.Served = &ws.Projected, &ws.Lag, &ws.MaxLag, true
		st.LagBound, st.MaxDelayNs, st.ProjectionRate = &ws.LagBound, &delay, &ws.ProjectionRate
	}
	st.Losses, err = storedir.ReadLosses(dir)
	if err != nil {
		st.LostError = err.Error()
	}
	st.Lost = storedir.LostRanges(st.Losses)
	if st.Lost == nil {
		st.Lost = []storedir.Range{} // [] in JSON: none lost
	}
	for _, r := range st.Lost {
		st.LostEvents += r.Count()
	}
	st.Disk, err = diskOf(dir)
	return st, err
}

// servedStats asks the process serving the store in dir, if one does, for
// the writer's positions.
func servedStats(dir string) (store.Stats, bool) {
	c, err := client.DialOptions(dir, &client.Options{Timeout: 2 * time.Second})
	if err != nil {
		return store.Stats{}, false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.Stats(ctx)
	return st, err == nil
}

func writerOf(dir string) writerInfo {
	h, held, err := lockHolder(dir)
	switch {
	case err != nil:
		return writerInfo{State: "unknown", Why: err.Error()}
	case !held:
		return writerInfo{State: "none"}
	case h.exclusive:
		return writerInfo{State: "open", PID: h.pid}
	}
	return writerInfo{State: "verify", PID: h.pid}
}

// ranked returns the n names with the most events, most first, ties by
// name.
func ranked(m map[string]int, n int) []count {
	out := make([]count, 0, len(m))
	for name, c := range m {
		out = append(out, count{name, c})
	}
	slices.SortFunc(out, func(a, b count) int {
		return cmp.Or(cmp.Compare(b.Events, a.Events), strings.Compare(a.Name, b.Name))
	})
	return out[:min(n, len(out))]
}

// diskOf adds up the files of the WAL, the event files and the index
// files of the store in dir.
func diskOf(dir string) (disk, error) {
	var d disk
	for _, part := range []struct {
		sub string
		to  *files
	}{{storedir.WALDir, &d.WAL}, {storedir.EventsDir, &d.EventFiles}, {storedir.IndexDir, &d.IndexFiles}} {
		err := filepath.WalkDir(filepath.Join(dir, part.sub), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			part.to.add(fi)
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return disk{}, err
		}
	}
	return d, nil
}

func (f *files) add(fi fs.FileInfo) {
	f.Files++
	f.Bytes += fi.Size()
	if n, ok := allocated(fi); ok {
		f.Allocated = ptr(deref(f.Allocated) + n)
	}
}

func ptr[T any](v T) *T { return &v }

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func (st *storeStats) print(w io.Writer) {
	fmt.Fprintf(w, "store %s\n", st.Dir)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-14s %s\n", name, fmt.Sprintf(format, args...))
	}
	row("writer", "%s", st.Writer)
	row("head", "%d", st.Head)
	if st.CheckpointError != "" {
		row("checkpointed", "unknown: %s", st.CheckpointError)
	} else {
		row("checkpointed", "%d", st.Checkpointed)
	}
	switch {
	case st.Served:
		row("projected", "%d (said by the serving process)", *st.Projected)
		row("lag", "%d (positions its projector has yet to write)", *st.Lag)
		row("lag bound", "%d events now: at most %d (Options.MaxProjectionLag), and %s of work at its %.0f events/s (Options.MaxProjectionDelay)",
			*st.LagBound, *st.MaxLag, delayText(time.Duration(*st.MaxDelayNs)), *st.ProjectionRate)
	case st.Projected != nil:
		row("projected", "%d (no writer: the projection stands at the checkpoint)", *st.Projected)
		row("lag", "%d (positions the next Open of the store projects)", *st.Lag)
	default:
		row("projected", "known only to the writer (at least %d)", st.Checkpointed)
		row("lag", "at most %d (head − checkpointed)", st.LagAtMost)
	}
	fmt.Fprintf(w, "events by type (%d):\n", len(st.Types))
	for _, c := range st.Types {
		row(c.Name, "%d", c.Events)
	}
	if st.Tags == 0 {
		fmt.Fprintln(w, "most used tags: none, no event has a tag")
	} else {
		fmt.Fprintf(w, "most used tags (%d of %d):\n", len(st.TopTags), st.Tags)
	}
	for _, c := range st.TopTags {
		row(c.Name, "%d", c.Events)
	}
	switch {
	case st.LostError != "":
		fmt.Fprintf(w, "lost positions: unknown: %s\n", st.LostError)
	case st.LostEvents == 0:
		fmt.Fprintln(w, "lost positions: none")
	default:
		fmt.Fprintf(w, "lost positions (%d, recorded in %s): %s\n", st.LostEvents, storedir.LostFile, storedir.FormatRanges(st.Lost))
		for _, l := range st.Losses {
			fmt.Fprintf(w, "  %s  %s: %s\n", l.Time.Format(time.RFC3339), storedir.FormatRanges(l.Lost), l.Why)
		}
	}
	fmt.Fprintln(w, "on disk:")
	row("wal", "%s", st.Disk.WAL)
	row("event files", "%s", st.Disk.EventFiles)
	row("index files", "%s", st.Disk.IndexFiles)
}

// process names the process that has the store open, for a message.
func (wi writerInfo) process() string {
	switch wi.State {
	case "open":
		return fmt.Sprintf("another process (pid %d)", wi.PID)
	case "verify":
		return fmt.Sprintf("another process (pid %d, a possum verify)", wi.PID)
	}
	return "another process"
}

// pid is " (pid N)" when the process holding the store is known, else "".
func (wi writerInfo) pid() string {
	if wi.PID == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", wi.PID)
}

func (wi writerInfo) String() string {
	switch wi.State {
	case "none":
		return "none (no process has the store open)"
	case "open":
		return fmt.Sprintf("open by pid %d", wi.PID)
	case "verify":
		return fmt.Sprintf("none; pid %d is verifying it", wi.PID)
	}
	return "unknown: " + wi.Why
}

func (f files) String() string {
	s := fmt.Sprintf("%s, %s", plural(f.Files, "file"), bytesText(f.Bytes))
	if f.Allocated != nil {
		s += fmt.Sprintf(" (%s allocated)", bytesText(*f.Allocated))
	}
	return s
}

// bytesText is n in B, KiB, MiB or GiB.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for ; v >= unit && i < 2; i++ {
		v /= unit
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMG"[i])
}

// delayText is a projection delay bound: none when negative.
func delayText(d time.Duration) string {
	if d < 0 {
		return "no bound"
	}
	return d.String()
}
