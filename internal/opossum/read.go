package opossum

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/possumstore/possum/dcb"
)

// Kind is the kind of a Problem.
type Kind string

const (
	// Missing: no event file at a position of the snapshot: a gap, or a
	// ledger ahead of the event files.
	Missing Kind = "missing"
	// Damaged: an event file that does not read as an Opossum event: empty,
	// zero-filled, cut short, not JSON, or JSON of another shape.
	Damaged Kind = "damaged"
	// Conflict: two events directories ("events" and "Events" on a
	// case-sensitive file system) hold different files for one position.
	Conflict Kind = "conflict"
)

// Problem is a position of a snapshot that does not give an event, or a
// run of them.
type Problem struct {
	Position uint64 `json:"position"`
	// Last, when set, is the last position of a run of positions without
	// files, from Position: the positions a ledger ahead of the event files
	// names beyond the last file.
	Last   uint64 `json:"last,omitempty"`
	Kind   Kind   `json:"kind"`
	File   string `json:"file,omitempty"` // the file at fault; none for Missing
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	switch {
	case p.Last > p.Position:
		return fmt.Sprintf("positions %d..%d: %s", p.Position, p.Last, p.Detail)
	case p.File == "":
		return fmt.Sprintf("position %d: %s", p.Position, p.Detail)
	}
	return fmt.Sprintf("position %d: %s: %s", p.Position, p.File, p.Detail)
}

// Positions is how many positions p stands for.
func (p *Problem) Positions() uint64 {
	return max(p.Last, p.Position) - p.Position + 1
}

// Item is one position of a snapshot, or a run of them: an event, or the
// problem that stands in its place (then Event holds the position only).
type Item struct {
	Event   dcb.SequencedEvent
	Problem *Problem
	// DuplicateTags are the tags the event carries more than once, as
	// possum tags (possum keeps each once).
	DuplicateTags []string
}

// gapDetail says why a position before the last event file has no file:
// the same words for each, so that a report can show a run of them as one.
const gapDetail = "no event file, though later positions have one: a gap"

// readChunk is how many positions the workers of Events read ahead.
const readChunk = 256

// Events yields every position of the snapshot, 1 to Cut, in order, as an
// Item: one a position up to the last event file, then, when the ledger is
// ahead of the files, one Item for the run of positions past the last file
// (whatever the ledger says, this costs no file look-up a position). It
// stops at ctx's end or at an error reading the file system (not a damaged
// file, which is an Item's Problem), yielding that error last. The files
// are read and parsed a chunk ahead by a few goroutines, so a caller
// appending the events works while the next ones are read.
func (s *Snapshot) Events(ctx context.Context) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type chunk struct {
			items []Item
			err   error
		}
		chunks := make(chan chunk, 1) // one chunk ahead of the caller
		go func() {
			defer close(chunks)
			for first := uint64(1); first <= s.LastFile; first += readChunk {
				items, err := s.readChunk(first, min(s.LastFile, first+readChunk-1))
				if err == nil {
					err = ctx.Err()
				}
				select {
				case chunks <- chunk{items, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range chunks {
			for _, it := range c.items {
				if !yield(it, nil) {
					return
				}
			}
			if c.err != nil {
				yield(Item{}, c.err)
				return
			}
		}
		if s.Ledger > s.LastFile {
			it := Item{Problem: &Problem{Position: s.LastFile + 1, Kind: Missing,
				Detail: fmt.Sprintf("no event file, though the ledger says %d: the ledger is ahead of the event files, whose writes were lost", s.Ledger)}}
			if s.Ledger > s.LastFile+1 {
				it.Problem.Last = s.Ledger
			}
			it.Event.Position = s.LastFile + 1
			yield(it, nil)
		}
	}
}

// readChunk reads positions first..last with a few goroutines.
func (s *Snapshot) readChunk(first, last uint64) ([]Item, error) {
	items := make([]Item, last-first+1)
	workers := min(max(runtime.GOMAXPROCS(0), 2), 8)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(items); i += workers {
				items[i], errs[w] = s.read(first + uint64(i))
				if errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return items, errors.Join(errs...)
}

// read reads the event of position pos.
func (s *Snapshot) read(pos uint64) (Item, error) {
	it := Item{}
	it.Event.Position = pos
	var b []byte
	var file string
	for _, dir := range s.EventDirs {
		path := filepath.Join(dir, fileName(pos))
		got, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return it, fmt.Errorf("opossum: %w", err)
		}
		if file == "" {
			b, file = got, path
			continue
		}
		if !bytes.Equal(got, b) {
			it.Problem = &Problem{Position: pos, Kind: Conflict, File: path, Detail: fmt.Sprintf("differs from %s: which one is the event?", file)}
			return it, nil
		}
	}
	if file == "" {
		it.Problem = &Problem{Position: pos, Kind: Missing, Detail: gapDetail}
		return it, nil
	}
	se, err := decodeFile(b, pos)
	if err != nil {
		it.Problem = &Problem{Position: pos, Kind: Damaged, File: file, Detail: err.Error()}
		return it, nil
	}
	it.Event = se
	it.DuplicateTags = duplicates(se.Tags)
	return it, nil
}

// duplicates returns the tags that occur more than once in tags, once each.
func duplicates(tags []string) []string {
	if len(dcb.Event{Tags: tags}.Normalized().Tags) == len(tags) {
		return nil // the common case, without allocating
	}
	seen := make(map[string]int, len(tags))
	var dups []string
	for _, t := range tags {
		if seen[t]++; seen[t] == 2 {
			dups = append(dups, t)
		}
	}
	return dups
}
