package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/opossum"
	"github.com/possumstore/possum/internal/opossum/opossumtest"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeEvents reads every event of the closed store in dir.
func storeEvents(t *testing.T, dir string) []dcb.SequencedEvent {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	var got []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		got = append(got, e)
	}
	return got
}

// assertSameEvents checks that got are the events want, event by event,
// and stops at the first that differs (a diff of thousands of events is
// too long to read, or to compute).
func assertSameEvents(t *testing.T, want, got []dcb.SequencedEvent, msgAndArgs ...any) {
	t.Helper()
	assert.Len(t, got, len(want), msgAndArgs...)
	for i := range min(len(want), len(got)) {
		if !assert.Equal(t, want[i], got[i], append([]any{"event %d", i + 1}, msgAndArgs...)...) {
			return
		}
	}
}

// assertNothingLeft checks that a refused or failed import left nothing
// beside DEST: no DEST, no temporary directory.
func assertNothingLeft(t *testing.T, dest string) {
	t.Helper()
	assert.NoDirExists(t, dest)
	ents, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	for _, e := range ents {
		assert.False(t, strings.Contains(e.Name(), ".importing-"), "left behind: %s", e.Name())
	}
}

// Every event of every layout comes into possum as the fixture holds it:
// the same position, type, tags, payload bytes, metadata and timestamp to
// the tick.
func TestImportOpossumRoundTrip(t *testing.T) {
	for _, name := range []string{"current", "seed", "minified"} {
		t.Run(name, func(t *testing.T) {
			src := opossumtest.Copy(t, name)
			dest := filepath.Join(t.TempDir(), "imported")
			code, out, errOut := runCmd("import-opossum", src, dest)
			require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			want := opossumtest.Want(name)
			assert.Contains(t, out, fmt.Sprintf("%s: %d events, positions 1..%d, into %s\n", name, len(want), len(want), dest))
			assert.Contains(t, out, fmt.Sprintf("imported %d events from 1 Opossum store into %s in ", len(want), dest))
			assert.Empty(t, errOut)
			assertSameEvents(t, want, storeEvents(t, dest))
			assertEventFiles(t, dest, len(want))
			assert.NotContains(t, out, "event and index files are written up to", "a small import waits for them")
		})
	}
}

// assertEventFiles checks that the store in dest has the event file of
// each of its n events: a small import waits for the projection.
func assertEventFiles(t *testing.T, dest string, n int) {
	t.Helper()
	for p := 1; p <= n; p++ {
		assert.FileExists(t, storedir.EventPath(dest, uint64(p)))
	}
}

// A root holding several Opossum stores becomes one possum store each,
// named as the store; what is not a store is left out.
func TestImportOpossumRoot(t *testing.T) {
	src := opossumtest.Copy(t, "root")
	dest := filepath.Join(t.TempDir(), "imported")
	code, out, errOut := runCmd("import-opossum", src, dest)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Contains(t, out, "imported 4 events from 3 Opossum stores into "+dest)
	assert.Contains(t, out, "Empty: no events, into "+filepath.Join(dest, "Empty")+"\n")
	ents, err := os.ReadDir(dest)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"Billing", "Empty", "Shop"}, names)
	for _, name := range names {
		assertSameEvents(t, opossumtest.Want("root/"+name), storeEvents(t, filepath.Join(dest, name)))
	}
}

// importJSON runs import-opossum --json and decodes its report.
func importJSON(t *testing.T, wantCode int, args ...string) (*opossumReport, string) {
	t.Helper()
	code, out, errOut := runCmd(append([]string{"import-opossum", "--json"}, args...)...)
	require.Equal(t, wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Empty(t, errOut, "--json says it all on stdout")
	var rep opossumReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return &rep, out
}

// Each damage an import meets gets its report. A position that gives no
// event refuses the import and nothing is written; what possum can carry
// faithfully is imported with a note.
func TestImportOpossumDamage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refused  []string // the problems, as the text report says them
		notes    []string // the notes of an import
		events   int
		jsonKind opossum.Kind
	}{
		{name: "gap", refused: []string{"position 3: no event file, though later positions have one: a gap", "run again with --fill-gaps"}, jsonKind: opossum.Missing},
		{name: "ledger-ahead", refused: []string{"positions 4..5: no event file, though the ledger says 5: the ledger is ahead of the event files, whose writes were lost"}, jsonKind: opossum.Missing},
		{name: "torn", refused: []string{"position 2: ", "0000000002.json: not JSON: the file ends inside a value (a torn write)", "restore it from a backup"}, jsonKind: opossum.Damaged},
		{name: "notjson", refused: []string{"0000000002.json: not JSON: invalid character '<'"}, jsonKind: opossum.Damaged},
		{name: "zerofilled", refused: []string{"0000000003.json: zero-filled"}, jsonKind: opossum.Damaged},
		{name: "empty", refused: []string{"0000000002.json: empty"}, jsonKind: opossum.Damaged},
		{name: "wrong-position", refused: []string{`"position" is 7, not the 2 of its file name`}, jsonKind: opossum.Damaged},
		{name: "ledger-behind", events: 4, notes: []string{
			"note: the ledger says 2, event files go on to 4: positions 3..4 are from an append that crashed before it moved the ledger; imported",
			"note: left alone 1 temporary file an interrupted Opossum write left (0000000005.json.tmp.",
		}},
		{name: "duplicate-tags", events: 2, notes: []string{"note: a tag given more than once on 1 event (position: tags 2: order:o2); possum keeps each tag once"}},
		{name: "corrupt-ledger", events: 2, notes: []string{"note: the ledger is not JSON", "positions taken from the event files"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := opossumtest.Copy(t, "damage/"+tc.name)
			dest := filepath.Join(t.TempDir(), "imported")
			code, out, errOut := runCmd("import-opossum", src, dest)
			if tc.refused != nil {
				assert.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
				for _, r := range tc.refused {
					assert.Contains(t, errOut, r)
				}
				assert.Contains(t, errOut, "nothing was written: "+dest+" was not created")
				assertNothingLeft(t, dest)

				rep, _ := importJSON(t, 1, src, dest)
				assert.False(t, rep.Imported)
				require.Len(t, rep.Contexts, 1)
				require.NotEmpty(t, rep.Contexts[0].Problems)
				assert.Equal(t, tc.jsonKind, rep.Contexts[0].Problems[0].Kind)
				assertNothingLeft(t, dest)
				return
			}
			require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			for _, n := range tc.notes {
				assert.Contains(t, out, n)
			}
			got := storeEvents(t, dest)
			require.Len(t, got, tc.events)
			for i, e := range got {
				want := opossumtest.Shop(i + 1)
				if tc.name == "duplicate-tags" && i == 1 {
					assert.Equal(t, []string{"order:o2", "customer:c9"}, e.Tags, "each tag once, in the order given")
					continue
				}
				assert.Equal(t, want, e)
			}
		})
	}
}

// A root with damage in two of its stores: every problem of both is
// reported, and no store of the root is written, the sound one either.
func TestImportOpossumRootRefused(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"damage/gap", "damage/torn", "root/Shop"} {
		require.NoError(t, os.Rename(opossumtest.Copy(t, name), filepath.Join(root, filepath.Base(name))))
	}
	dest := filepath.Join(t.TempDir(), "imported")
	code, out, errOut := runCmd("import-opossum", root, dest)
	require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Contains(t, errOut, "possum import-opossum: gap ("+filepath.Join(root, "gap")+"): 1 position without an event:\n  position 3: no event file")
	assert.Contains(t, errOut, "possum import-opossum: torn ("+filepath.Join(root, "torn")+"): 1 position without an event:\n  position 2: ")
	assert.NotContains(t, out, "Shop: 2 events", "nothing is said imported")
	assertNothingLeft(t, dest)

	rep, _ := importJSON(t, 1, root, dest)
	assert.Zero(t, rep.Events)
	for _, cr := range rep.Contexts {
		assert.Zero(t, cr.Events, cr.Name)
	}
}

// marker is the lost position's marker at pos, as a read yields it.
func marker(pos uint64, typ string, tags ...string) dcb.SequencedEvent {
	return dcb.SequencedEvent{Event: dcb.Event{Type: typ, Tags: tags}, Position: pos, Lost: true}
}

// --fill-gaps imports a store with gaps: every position kept, a lost
// position's marker at each position without a file (known where
// Opossum's index files still say its type and tags, else unknown), the
// store's LOST file listing them, and possum stats and verify too. A
// condition over a marker fails; one past it, or that a known marker does
// not match, passes.
func TestImportOpossumFillGaps(t *testing.T) {
	src := opossumtest.Copy(t, "damage/gap")
	dest := filepath.Join(t.TempDir(), "imported")
	rep, _ := importJSON(t, 0, "--fill-gaps", src, dest)
	assert.True(t, rep.Imported)
	assert.Equal(t, 4, rep.Events)
	assert.Equal(t, uint64(1), rep.Markers)
	assert.Equal(t, []storedir.Range{{From: 3, To: 3}}, rep.Contexts[0].Lost)
	assert.Zero(t, rep.Contexts[0].KnownMarkers, "the fixture has no index files")
	want := []dcb.SequencedEvent{opossumtest.Shop(1), opossumtest.Shop(2), marker(3, ""), opossumtest.Shop(4), opossumtest.Shop(5)}
	assertSameEvents(t, want, storeEvents(t, dest))

	// A ledger ahead of the files: the run past the last file is lost.
	dest = filepath.Join(t.TempDir(), "ahead")
	rep, _ = importJSON(t, 0, "--fill-gaps", opossumtest.Copy(t, "damage/ledger-ahead"), dest)
	assert.Equal(t, []storedir.Range{{From: 4, To: 5}}, rep.Contexts[0].Lost)
	want = []dcb.SequencedEvent{opossumtest.Shop(1), opossumtest.Shop(2), opossumtest.Shop(3), marker(4, ""), marker(5, "")}
	assertSameEvents(t, want, storeEvents(t, dest))

	// Both: Opossum's index files say the type and tag of 3 and the type of
	// 9; nothing certain of 5 and 8.
	src = opossumtest.Copy(t, "damage/gaps-indexed")
	dest = filepath.Join(t.TempDir(), "indexed")
	code, out, errOut := runCmd("import-opossum", "--fill-gaps", src, dest)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Contains(t, out, "gaps-indexed: 5 events and 4 lost positions' markers, positions 1..9, into "+dest+"\n")
	assert.Contains(t, out, "note: kept 4 positions without an event file (3, 5, 8..9) as lost positions' markers, no data: 2 of the type and tags Opossum's index files still say, 2 unknown (they match every query); an append condition whose range covers one fails, saying to read again; possum stats lists them, and the store's LOST file records them\n")
	assert.Contains(t, out, "imported 5 events and 4 lost positions' markers from 1 Opossum store into "+dest)
	want = []dcb.SequencedEvent{opossumtest.Shop(1), opossumtest.Shop(2), marker(3, "OrderPlaced", "order:o3"), opossumtest.Shop(4),
		marker(5, ""), opossumtest.Shop(6), opossumtest.Shop(7), marker(8, ""), marker(9, "OrderCancelled")}
	assertSameEvents(t, want, storeEvents(t, dest))
	losses, err := storedir.ReadLosses(dest)
	require.NoError(t, err)
	assert.Equal(t, []storedir.Range{{From: 3, To: 3}, {From: 5, To: 5}, {From: 8, To: 9}}, storedir.LostRanges(losses))
	for _, l := range losses {
		assert.Contains(t, l.Why, "possum import-opossum --fill-gaps: no event file at these positions of the Opossum store "+src)
	}
	st := statsJSON(t, dest)
	assert.Equal(t, []storedir.Range{{From: 3, To: 3}, {From: 5, To: 5}, {From: 8, To: 9}}, st.Lost)
	assert.Equal(t, uint64(4), st.LostEvents)
	v := possum(t, "", "verify", dest)
	require.Equal(t, 0, v.code, v)
	assert.Contains(t, v.stdout, "lost positions in the store: 3, 5, 8..9 (4 positions; LOST lists them)")

	s, err := store.Open(dest, nil)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	var byType []uint64
	for e, err := range s.Read(ctx, dcb.Query{Items: []dcb.QueryItem{{Types: []string{"OrderPlaced"}}}}, store.ReadOptions{}) {
		require.NoError(t, err)
		byType = append(byType, e.Position)
	}
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8}, byType, "the known marker of its type, the unknown ones, not 9's other type")
	cond := func(after uint64, q dcb.QueryItem) error {
		_, err := s.Append(ctx, []dcb.Event{{Type: "OrderPlaced", Data: json.RawMessage(`{}`)}}, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{q}}, After: after})
		return err
	}
	err = cond(2, dcb.QueryItem{Tags: []string{"order:o3"}})
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "the known marker at 3 matches")
	assert.ErrorContains(t, err, "position 3")
	err = cond(4, dcb.QueryItem{Types: []string{"Anything"}})
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "the unknown marker at 5 might have matched")
	assert.ErrorContains(t, err, "read the condition's query again")
	assert.NoError(t, cond(8, dcb.QueryItem{Types: []string{"OrderPlaced"}}), "9 is known to be of another type")

	// A damaged file is not a gap: --fill-gaps does not cover it.
	code, _, errOut = runCmd("import-opossum", "--fill-gaps", opossumtest.Copy(t, "damage/torn"), filepath.Join(t.TempDir(), "torn"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "a torn write")
}

// Bad usage and a DEST that exists change nothing.
func TestImportOpossumRefusals(t *testing.T) {
	src := opossumtest.Copy(t, "current")
	existing := t.TempDir()
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{src}, "want exactly 2 arguments (SRC DEST)"},
		{[]string{src, existing}, existing + " exists; import-opossum makes a new store there, nothing was written"},
		{[]string{filepath.Join(src, "nothing"), filepath.Join(existing, "x")}, "no such file or directory"},
		{[]string{filepath.Join(src, "events"), filepath.Join(existing, "x")}, "no Opossum store at"},
	} {
		code, _, errOut := runCmd(append([]string{"import-opossum"}, tc.args...)...)
		assert.Equal(t, 2, code, "%q", tc.args)
		assert.Contains(t, errOut, tc.msg, "%q", tc.args)
		assert.NotContains(t, errOut, "possum import-opossum: opossum: opossum:", "the prefix said once")
	}
	ents, err := os.ReadDir(existing)
	require.NoError(t, err)
	assert.Empty(t, ents)
}

// An Opossum process that goes on appending while the import runs: the
// import takes the store as it was between two of its appends (the writer
// appends three events at a time), every event of it exact, and says that
// more came after.
func TestImportOpossumWhileWritten(t *testing.T) {
	src := filepath.Join(t.TempDir(), "Live")
	w, err := opossumtest.NewWriter(src, true)
	require.NoError(t, err)
	var appended atomic.Int64
	var want []dcb.SequencedEvent // written by the writer goroutine until done is closed, then read
	done, stopped := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				stopped <- nil
				return
			default:
			}
			batch := make([]opossumtest.Event, 3)
			for j := range batch {
				n := 3*i + j
				batch[j] = opossumtest.Event{Type: fmt.Sprintf("T%d", n%4), Tags: [][2]string{{"n", fmt.Sprint(n)}, {"batch", fmt.Sprint(i)}},
					Payload:   fmt.Sprintf("{\n      \"$type\": \"Live.T, Live\",\n      \"n\": %d\n    }", n),
					Timestamp: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * 1234567 * time.Nanosecond),
					Metadata:  map[string]string{"correlationId": fmt.Sprint("c", i)}}
			}
			got, err := w.Append(batch)
			if err != nil {
				stopped <- err
				return
			}
			want = append(want, got...)
			appended.Add(int64(len(got)))
		}
	}()
	waitFor := func(n int64) {
		for deadline := time.Now().Add(time.Minute); appended.Load() < n; {
			require.True(t, time.Now().Before(deadline), "the writer appended %d events, want %d", appended.Load(), n)
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(300)

	dest := filepath.Join(t.TempDir(), "imported")
	im := &opossumImport{src: src, dest: dest, afterScan: func() {
		waitFor(appended.Load() + 6) // the writer appends after the snapshot, during the import
	}}
	rep, err := im.run(context.Background())
	close(done)
	require.NoError(t, <-stopped)
	require.NoError(t, err)
	require.True(t, rep.Imported)
	cr := rep.Contexts[0]
	assert.True(t, cr.Locked)
	assert.Equal(t, cr.Ledger, cr.Cut, "the snapshot falls between two appends: the ledger covers every file")
	assert.Zero(t, cr.Cut%3, "whole appends only")
	assert.GreaterOrEqual(t, cr.Cut, uint64(300))
	assertSameEvents(t, want[:cr.Cut], storeEvents(t, dest))
	require.NotEmpty(t, cr.Warnings)
	growth := cr.Warnings[len(cr.Warnings)-1]
	assert.Contains(t, growth, "the Opossum store was written during the import: it reaches position ")
	assert.Contains(t, growth, fmt.Sprintf("the import took it as it was at position %d, under Opossum's lock, between two appends; positions %d..", cr.Cut, cr.Cut+1))
}

// The command as a process: --json on a root, exit 1 and a report on
// stderr for a damaged store.
func TestImportOpossumProcess(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "imported")
	r := possum(t, "", "import-opossum", "--json", opossumtest.Copy(t, "root"), dest)
	require.Equal(t, 0, r.code, r)
	var rep opossumReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r)
	assert.True(t, rep.Imported)
	assert.Equal(t, 4, rep.Events)
	require.Len(t, rep.Contexts, 3)
	assert.Equal(t, filepath.Join(dest, "Billing"), rep.Contexts[0].Dest)
	assertSameEvents(t, opossumtest.Want("root/Shop"), storeEvents(t, filepath.Join(dest, "Shop")))

	torn := filepath.Join(t.TempDir(), "torn")
	r = possum(t, "", "import-opossum", opossumtest.Copy(t, "damage/torn"), torn)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stderr, "a torn write", r)
	assertNothingLeft(t, torn)
}

// writeOpossum writes an Opossum store of n events at dir, as an Opossum
// process of 0.5.0 would, in appends of 1000, and returns them as they
// must import.
func writeOpossum(t testing.TB, dir string, n int) []dcb.SequencedEvent {
	t.Helper()
	w, err := opossumtest.NewWriter(dir, true)
	require.NoError(t, err)
	var want []dcb.SequencedEvent
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for len(want) < n {
		batch := make([]opossumtest.Event, min(1000, n-len(want)))
		for j := range batch {
			i := len(want) + j
			batch[j] = opossumtest.Event{
				Type: []string{"CourseCreatedEvent", "StudentRegisteredEvent", "StudentEnrolledToCourseEvent"}[i%3],
				Tags: [][2]string{{"courseId", fmt.Sprintf("c%d", i%100)}, {"studentId", fmt.Sprintf("s%d", i)}},
				Payload: fmt.Sprintf("{\n      \"$type\": \"Opossum.Samples.CourseManagement.Events.Event%d, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null\",\n"+
					"      \"courseId\": \"c%d\",\n      \"studentId\": \"s%d\",\n      \"name\": \"Student number %d\"\n    }", i%3, i%100, i, i),
				Timestamp: t0.Add(time.Duration(i) * 1234567 * time.Nanosecond),
				Metadata:  map[string]string{"correlationId": fmt.Sprintf("%08d-0000-4000-8000-000000000000", i/10)},
			}
		}
		got, err := w.Append(batch)
		require.NoError(t, err)
		want = append(want, got...)
	}
	return want
}

// An import killed with kill -9 leaves no DEST, only its temporary
// directory, which the next import names; that one imports every event.
// POSSUM_OPOSSUM_KILL_EVENTS sets the size of the Opossum store (1000).
func TestImportOpossumKilled(t *testing.T) {
	n := testenv.Scaled(t, "POSSUM_OPOSSUM_KILL_EVENTS", 1000, 300)
	src := filepath.Join(t.TempDir(), "Big")
	want := writeOpossum(t, src, n)
	parent := t.TempDir()
	dest := filepath.Join(parent, "imported")

	cmd := possumCommand("import-opossum", src, dest)
	var errOut child.Buffer
	cmd.Stderr = &errOut
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Kill it once its first append is in the WAL of the temporary store.
	for deadline := time.Now().Add(time.Minute); ; {
		segs, _ := filepath.Glob(filepath.Join(parent, ".imported.importing-*", "wal", "0*"))
		if len(segs) > 0 {
			if st, err := os.Stat(segs[0]); err == nil && st.Size() > 0 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the import ended before it could be killed (%v): %s", err, errOut.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "no append seen: %s", errOut.String())
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, cmd.Process.Kill())
	<-exited
	assert.NoDirExists(t, dest, "a killed import leaves nothing that looks complete")
	left, err := filepath.Glob(filepath.Join(parent, ".imported.importing-*"))
	require.NoError(t, err)
	require.Len(t, left, 1)

	r := possum(t, "", "import-opossum", src, dest)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "note: "+left[0]+" is what an import that did not finish (killed, or the machine stopped) left; it is not a store, remove it")
	got := storeEvents(t, dest)
	assertSameEvents(t, want, got)
}

// BenchmarkImportOpossum measures possum import-opossum against possum
// append of the same events as NDJSON, both as processes in the same run,
// in events a second of wall time (each waits up to the same 2 seconds for
// the event files, then leaves the rest to the next open), and the
// import's own rate without that wait. POSSUM_OPOSSUM_BENCH_EVENTS sets the
// events (default 20000).
func BenchmarkImportOpossum(b *testing.B) {
	n := testenv.Int(b, "POSSUM_OPOSSUM_BENCH_EVENTS", 20000)
	src := filepath.Join(b.TempDir(), "Bench")
	want := writeOpossum(b, src, n)
	ndjson := filepath.Join(b.TempDir(), "events.ndjson")
	f, err := os.Create(ndjson)
	require.NoError(b, err)
	enc := json.NewEncoder(f)
	for _, e := range want {
		require.NoError(b, enc.Encode(map[string]any{"type": e.Type, "tags": e.Tags, "data": e.Data, "metadata": e.Metadata,
			"timestamp": e.Timestamp.Format(time.RFC3339Nano)}))
	}
	require.NoError(b, f.Close())

	var imported, appended time.Duration
	var importOwn float64
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		start := time.Now()
		out, err := possumCommand("import-opossum", "--json", src, filepath.Join(dir, "imported")).Output()
		imported += time.Since(start)
		require.NoError(b, err, "%s", out)
		var rep opossumReport
		require.NoError(b, json.Unmarshal(out, &rep))
		require.Equal(b, n, rep.Events)
		importOwn += rep.Seconds

		in, err := os.Open(ndjson)
		require.NoError(b, err)
		cmd := possumCommand("append", filepath.Join(dir, "appended"))
		cmd.Stdin = in
		start = time.Now()
		out, err = cmd.CombinedOutput()
		appended += time.Since(start)
		in.Close()
		require.NoError(b, err, "%s", out)
	}
	b.StopTimer()
	events := float64(n * b.N)
	b.ReportMetric(events/imported.Seconds(), "import-events/s")
	b.ReportMetric(events/appended.Seconds(), "append-events/s")
	b.ReportMetric(appended.Seconds()/imported.Seconds(), "import/append")
	b.ReportMetric(events/importOwn, "import-events/s-without-wait")
}
