package storedir

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/possumstore/possum/internal/sys/vfs"
)

// LostFile, in the store directory, records every loss of the store, one
// JSON line per event (a recovery that accepted a loss, markers appended
// as copies of positions lost elsewhere): append-only, written durably
// (RecordLoss), for people and for possum stats and verify. The lost
// positions themselves are markers in the WAL (see dcb.SequencedEvent.Lost);
// this file says when and why.
const LostFile = "LOST"

// Loss is one line of the LOST file.
type Loss struct {
	// Time is when the loss was recorded, UTC.
	Time time.Time `json:"time"`
	// Lost lists the lost positions, as ranges in order; Events counts
	// them.
	Lost   []Range `json:"lost"`
	Events uint64  `json:"events"`
	// Why says what lost them: the damage a recovery found, or where
	// markers were copied from.
	Why string `json:"why"`
	// Broken lists the damaged files a recovery kept aside (paths
	// relative to the store directory), where what still verifies in them
	// can be looked at.
	Broken []string `json:"broken,omitempty"`
}

// Range is the positions From..To, both included.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Count returns how many positions r holds.
func (r Range) Count() uint64 { return r.To - r.From + 1 }

// String writes r as "17" or "17..20".
func (r Range) String() string {
	if r.From == r.To {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d..%d", r.From, r.To)
}

// AddRange appends from..to to the ordered ranges rs, merged with the last
// one when they touch.
func AddRange(rs []Range, from, to uint64) []Range {
	if n := len(rs); n > 0 && rs[n-1].To+1 >= from {
		rs[n-1].To = max(rs[n-1].To, to)
		return rs
	}
	return append(rs, Range{From: from, To: to})
}

// FormatRanges writes rs as "3, 7..9, 12".
func FormatRanges(rs []Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// RecordLoss appends l to the LOST file of the store in dir, durably: the
// line is fsync'd, and the directory too when the file is new. A line a
// crash tore off (no newline at the end of the file) is cut first; it was
// never recorded. Every change goes through fs.
func RecordLoss(fs vfs.FS, dir string, l Loss) error {
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	l.Time = l.Time.UTC()
	line, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("storedir: LOST: %w", err) // a bug: strings and numbers
	}
	line = append(line, '\n')
	path := filepath.Join(dir, LostFile)
	_, statErr := os.Stat(path)
	if err := cutTornLine(fs, path); err != nil {
		return fmt.Errorf("storedir: LOST: %w", err)
	}
	f, err := fs.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("storedir: LOST: %w", err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, os.ErrNotExist) {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("storedir: LOST: %w", err)
	}
	return nil
}

// cutTornLine cuts the file at path after its last newline, when it does
// not end with one (a line a crash tore). A missing file is fine.
func cutTornLine(fs vfs.FS, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 || (err == nil && b[len(b)-1] == '\n') {
		return nil
	}
	if err != nil {
		return err
	}
	return fs.Truncate(path, int64(bytes.LastIndexByte(b, '\n')+1))
}

// ReadLosses reads the LOST file of the store in dir, line by line: none
// when there is no file. A last line without its newline was torn by a
// crash and never recorded: it is ignored. Any other line that is not a
// Loss is an error naming it.
func ReadLosses(dir string) ([]Loss, error) {
	f, err := os.Open(filepath.Join(dir, LostFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storedir: LOST: %w", err)
	}
	defer f.Close()
	var out []Loss
	br := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // a torn last line, or none
		}
		if err != nil {
			return out, fmt.Errorf("storedir: LOST: %w", err)
		}
		var l Loss
		if err := json.Unmarshal(line, &l); err != nil {
			return out, fmt.Errorf("storedir: LOST line %d: %w", n, err)
		}
		out = append(out, l)
	}
}

// LostRanges returns the positions the losses list, merged into ordered
// ranges.
func LostRanges(ls []Loss) []Range {
	var all []Range
	for _, l := range ls {
		all = append(all, l.Lost...)
	}
	slices.SortFunc(all, func(a, b Range) int { return cmp.Compare(a.From, b.From) })
	var out []Range
	for _, r := range all {
		out = AddRange(out, r.From, r.To)
	}
	return out
}
