package wal

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readModes are the two ways a Log reads its segments: through memory
// mappings (where the platform has them) and with positional reads only.
var readModes = []struct {
	name  string
	pread bool
}{{"mapped", false}, {"pread", true}}

// openLogMode opens the log in dir reading segments as mode says.
func openLogMode(t testing.TB, dir string, opts Options, pread bool) *Log {
	t.Helper()
	l := openLog(t, dir, opts)
	l.pread = pread
	return l
}

// eventsOf returns the event at each position of recs, indexed by position.
func eventsOf(recs []Record) []dcb.SequencedEvent {
	out := []dcb.SequencedEvent{{}}
	for _, r := range recs {
		r = normalized(r)
		for p := r.FirstPosition; p <= r.LastPosition(); p++ {
			out = append(out, r.Event(p))
		}
	}
	return out
}

// requireEvents reads every event of want through rd in order, backwards and
// in random order, and requires each to be exact.
func requireEvents(t *testing.T, rd *Reader, want []dcb.SequencedEvent) {
	t.Helper()
	last := uint64(len(want) - 1)
	check := func(how string, p uint64) {
		t.Helper()
		got, err := rd.Event(p)
		require.NoError(t, err, "%s, position %d", how, p)
		require.Equal(t, want[p], got, "%s, position %d", how, p)
	}
	for p := uint64(1); p <= last; p++ {
		check("in order", p)
	}
	for p := last; p >= 1; p-- {
		check("backwards", p)
	}
	for _, i := range rand.New(rand.NewPCG(last, 3)).Perm(int(last)) {
		check("random order", uint64(i)+1)
	}
}

// TestEventsInEveryReadMode: every event reads back exact through one Reader
// in order, backwards and at random, with mapped segments and with
// positional reads, across segment rolls and before and after a reopen.
func TestEventsInEveryReadMode(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLogMode(t, dir, Options{SegmentSize: 2000, NoSync: true}, m.pread)
			recs := appendN(t, l, 120, rand.New(rand.NewPCG(31, 1)))
			require.Greater(t, len(segmentFiles(t, dir)), 3)
			want := eventsOf(recs)
			requireEvents(t, l.NewReader(), want)
			require.NoError(t, l.Close())

			l = openLogMode(t, dir, Options{SegmentSize: 2000, TrustPosition: lastPos(recs)}, m.pread)
			defer l.Close()
			requireEvents(t, l.NewReader(), want)
		})
	}
}

// withMarkers returns recs with every event whose position is a multiple
// of every made a lost marker, keeping its type and, every other time, its
// tags (unknown markers have neither).
func withMarkers(recs []Record, every uint64) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.Events = slices.Clone(r.Events)
		for j, e := range r.Events {
			pos := r.FirstPosition + uint64(j)
			if pos%every != 0 {
				continue
			}
			if r.Lost == nil {
				r.Lost = make([]bool, len(r.Events))
			}
			r.Lost[j] = true
			switch {
			case pos%(2*every) == 0:
				r.Events[j] = dcb.Event{Type: e.Type, Tags: e.Tags}
			default:
				r.Events[j] = dcb.Event{}
			}
		}
		out[i] = r
	}
	return out
}

// TestMarkersReadBack: lost markers written in records beside events read
// back as markers (Lost, their type and tags, nothing else), alone and with
// their record, in every read mode, before and after a reopen.
func TestMarkersReadBack(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLogMode(t, dir, Options{SegmentSize: 4000, NoSync: true}, m.pread)
			recs := genChain(0, 60)
			big := genRecord(lastPos(recs) + 1)
			for len(big.Events) < 40 {
				big.Events = append(big.Events, genRecord(big.FirstPosition + uint64(len(big.Events))).Events[0])
			}
			recs = withMarkers(append(recs, big), 3)
			require.NoError(t, l.Append(recs))
			want := eventsOf(recs)
			lost := 0
			for _, e := range want[1:] {
				if e.Lost {
					lost++
					assert.True(t, e.Timestamp.IsZero())
				}
			}
			require.Equal(t, int(lastPos(recs)/3), lost)
			requireEvents(t, l.NewReader(), want)
			got, err := l.ReadRecord(big.FirstPosition)
			require.NoError(t, err)
			requireRecordEqual(t, recs[len(recs)-1], got)
			require.NoError(t, l.Close())

			l = openLogMode(t, dir, Options{SegmentSize: 4000, TrustPosition: lastPos(recs)}, m.pread)
			defer l.Close()
			requireEvents(t, l.NewReader(), want)
		})
	}
}

// TestVersionsOutOfOrder: a version 3 record among version 2 records (what
// a repair writes where a version 2 record lost events: markers need
// version 3's flags) reads back exact, alone and whole: a reader takes each
// record's version from its frame, not from its place in the log.
func TestVersionsOutOfOrder(t *testing.T) {
	seg, err := os.ReadFile(filepath.Join("testdata", "v2", segmentName(1)))
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, segmentName(1))
	writeFile(t, path, seg)
	ents := segmentEntries(t, path)
	require.Len(t, ents, 2)
	// Record 1 (position 1) becomes a version 3 record holding a marker.
	marker, err := AppendFrame(nil, Record{FirstPosition: 1, Events: []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}}}, Lost: []bool{true}})
	require.NoError(t, err)
	b := binary.AppendUvarint(nil, uint64(len(marker)))
	b = append(b, marker...)
	b = append(b, seg[ents[1].off:]...)
	writeFile(t, path, b)
	l := openLog(t, dir, Options{})
	more := []Record{{FirstPosition: 5, Stamp: ts, Events: []dcb.Event{{Type: "A", ID: "a"}, {Type: "B"}}}}
	require.NoError(t, l.Append(more))
	require.NoError(t, l.Close())
	old, err := DecodeFrame(seg[ents[1].off+ents[1].prefix : ents[1].end()])
	require.NoError(t, err)
	want := eventsOf(append([]Record{{FirstPosition: 1, Events: []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}}}, Lost: []bool{true}}, old}, more...))
	for _, m := range readModes {
		for _, trust := range []uint64{0, 6} {
			l := openLogMode(t, dir, Options{TrustPosition: trust}, m.pread)
			for _, pos := range []uint64{1, 3, 5, 2, 6, 4} { // out of order: events read alone
				e, err := l.NewReader().Event(pos)
				require.NoError(t, err, "%s, trust %d, position %d", m.name, trust, pos)
				assert.Equal(t, want[pos], e, "%s, trust %d, position %d", m.name, trust, pos)
			}
			requireEvents(t, l.NewReader(), want)
			require.NoError(t, l.Close())
		}
	}
}

// TestMappedTailGrows: a Reader reads the tail segment while it grows under
// its mapping, and a record that overruns the segment size (past the first
// mapping) is read through a larger one, the older mapping staying valid.
func TestMappedTailGrows(t *testing.T) {
	const segSize = 1 << 16
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLogMode(t, dir, Options{SegmentSize: segSize, NoSync: true}, m.pread)
			defer l.Close()
			rd := l.NewReader()
			var recs []Record
			appendAndRead := func(r Record) {
				t.Helper()
				require.NoError(t, l.Append([]Record{r}))
				recs = append(recs, r)
				want := eventsOf(recs)
				for p := r.FirstPosition; p <= r.LastPosition(); p++ {
					got, err := rd.Event(p)
					require.NoError(t, err, "position %d", p)
					require.Equal(t, want[p], got, "position %d", p)
				}
				// An event read before, through the mapping it was read with.
				got, err := rd.Event(1)
				require.NoError(t, err)
				require.Equal(t, want[1], got)
			}
			for range 20 {
				appendAndRead(genRecord(lastPos(recs) + 1))
			}
			// Twice the segment size in one record: the tail outgrows the
			// mapping made for it.
			pad := json.RawMessage(`"` + strings.Repeat("p", 2*segSize) + `"`)
			big := Record{FirstPosition: lastPos(recs) + 1, Stamp: time.Unix(1700000001, 0).UTC(), Events: []dcb.Event{
				{Type: "Big", Tags: []string{"b"}, Data: pad},
				{Type: "After", Data: json.RawMessage(`{}`)},
			}}
			appendAndRead(big)
			for range 5 {
				appendAndRead(genRecord(lastPos(recs) + 1)) // in the next segment
			}
			require.Len(t, segmentFiles(t, dir), 2)
			if canMap && !m.pread {
				first := l.segs[0]
				first.mapped.mu.Lock()
				n := len(first.mapped.all)
				first.mapped.mu.Unlock()
				assert.Equal(t, 2, n, "the first segment was mapped again, larger")
			}
			requireEvents(t, l.NewReader(), eventsOf(recs))
		})
	}
}

// TestEventOwnsItsBytes: an event read shares no memory with the Reader, the
// log or another event: changing its data changes nothing else, and later
// reads leave it as it was.
func TestEventOwnsItsBytes(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			l := openLogMode(t, t.TempDir(), Options{NoSync: true}, m.pread)
			defer l.Close()
			recs := genChain(0, 30)
			require.NoError(t, l.Append(recs))
			want := eventsOf(recs)
			rd := l.NewReader()
			var held []dcb.SequencedEvent
			for p := uint64(1); p < uint64(len(want)); p++ {
				e, err := rd.Event(p)
				require.NoError(t, err)
				held = append(held, e)
				for i := range e.Data {
					e.Data[i] = 'X' // the caller's to change
				}
				if len(e.Data) > 0 {
					_ = append(e.Data, '!') // never into another field
				}
			}
			requireEvents(t, rd, want)
			for i, e := range held {
				p := uint64(i + 1)
				assert.Equal(t, want[p].Type, e.Type, "position %d", p)
				assert.Equal(t, want[p].Tags, e.Tags, "position %d", p)
				assert.Equal(t, want[p].Metadata, e.Metadata, "position %d", p)
			}
		})
	}
}

// TestEventReadsRacingClose: readers reading events while the log closes
// get exact events, then ErrClosed, never a fault or other bytes: Close
// unmaps the segments only once no read is using them.
func TestEventReadsRacingClose(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			l := openLogMode(t, t.TempDir(), Options{SegmentSize: 4000, NoSync: true}, m.pread)
			recs := genChain(0, 200)
			for i := 0; i < len(recs); i += 10 {
				require.NoError(t, l.Append(recs[i:min(i+10, len(recs))]))
			}
			want := eventsOf(recs)
			const readers = 6
			var started, wg sync.WaitGroup
			started.Add(readers)
			for g := range readers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(41, uint64(g)))
					rd := l.NewReader()
					for i := 0; ; i++ {
						if i == 100 {
							started.Done()
						}
						p := 1 + rng.Uint64N(uint64(len(want)-1))
						if g%2 == 0 {
							p = uint64(i%(len(want)-1)) + 1 // a scan
						}
						e, err := rd.Event(p)
						if err != nil {
							assert.ErrorIs(t, err, ErrClosed, "position %d", p)
							if i < 100 {
								started.Done()
							}
							return
						}
						if !assert.Equal(t, want[p], e, "position %d", p) {
							return
						}
					}
				})
			}
			started.Wait() // every reader is reading
			require.NoError(t, l.Close())
			wg.Wait()
			_, err := l.NewReader().Event(1)
			assert.ErrorIs(t, err, ErrClosed)
		})
	}
}

// TestMappedSegmentShrunk: a segment truncated under a live log (by another
// process: possum never does) makes a read through its mapping fail with an
// error, not crash the process with SIGBUS.
func TestMappedSegmentShrunk(t *testing.T) {
	if !canMap {
		t.Skip("segments are not memory-mapped on this platform")
	}
	dir := t.TempDir()
	l := openLog(t, dir, Options{NoSync: true})
	defer l.Close()
	recs := genChain(0, 400)
	require.NoError(t, l.Append(recs))
	_, err := l.NewReader().Event(1) // maps the segment
	require.NoError(t, err)
	require.NoError(t, os.Truncate(filepath.Join(dir, segmentName(1)), 0))
	// Past the first page of the file, which the kernel may keep zero-filled.
	_, err = l.NewReader().Event(lastPos(recs))
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = l.NewReader().Record(lastPos(recs)) // a whole frame, as a scan reads
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "memory fault")
}

// TestLocateAsTheLogGrows: the sparse locate index finds the record of every
// position, and none beyond the log, as records are appended one at a time
// and many at a time across its strides.
func TestLocateAsTheLogGrows(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{NoSync: true})
	defer l.Close()
	rng := rand.New(rand.NewPCG(51, 1))
	recs := genChain(0, 5*locStride+7)
	for rest := recs; len(rest) > 0; {
		k := min(len(rest), 1+rng.IntN(2*locStride))
		if rng.IntN(3) == 0 {
			k = 1
		}
		require.NoError(t, l.Append(rest[:k]))
		rest = rest[k:]
		last := l.LastPosition()
		for range 50 {
			p := 1 + rng.Uint64N(last+2)
			loc, _, err := l.locate(p)
			if p > last {
				require.ErrorIs(t, err, ErrNotFound, "position %d of %d", p, last)
				continue
			}
			require.NoError(t, err, "position %d", p)
			require.True(t, loc.firstPos <= p && p <= loc.lastPos(), "position %d in record %d..%d", p, loc.firstPos, loc.lastPos())
		}
	}
	for i, r := range recs {
		for p := r.FirstPosition; p <= r.LastPosition(); p++ {
			loc, _, err := l.locate(p)
			require.NoError(t, err)
			require.Equal(t, r.FirstPosition, loc.firstPos, "record %d", i)
		}
	}
	_, _, err := l.locate(0)
	require.ErrorIs(t, err, ErrNotFound)
}
