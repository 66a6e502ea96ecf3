package store_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// powerLossChildEnv makes the crash child record its projector's file
	// system calls; its value is powerLossSound or powerLossBroken.
	powerLossChildEnv = "POSSUM_POWERLOSS_CHILD"
	powerLossSound    = "sound"
	// powerLossBroken: the child's checkpoint is written before its syncfs
	// (see recordingFS).
	powerLossBroken = "checkpoint-before-syncfs"
)

// TestPowerLoss kills a process appending to a store, as TestCrashRecovery
// does, then rolls the directory back to what a power cut at some moment
// could have left (see powerLoss.rollBack): writes after the last sync of a
// file lost, torn or zero-filled, renames, creations and removals after the
// last sync of their directory undone, the WAL cut anywhere after the last
// record known durable. Then the store must open, hold every acknowledged
// append exactly, lose nothing the checkpoint vouched for, and after Close
// verify as consistent. POSSUM_POWERLOSS_ITERATIONS (default 2; CI's soak
// runs 12) sets the
// iterations, POSSUM_POWERLOSS_SEED the seed of the workload and of the
// rollback's choices (the moment of the kill is the machine's).
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	pl := newPowerLoss(t, powerLossSound)
	for it := range testenv.Scaled(t, "POSSUM_POWERLOSS_ITERATIONS", 2, 1) {
		pl.iteration(t, t, it)
	}
}

// TestPowerLossCatchesEarlyCheckpoint tests the detector: with a checkpoint
// written before the syncfs that should make what it covers durable, the
// power-loss loop must find a problem within a few iterations.
func TestPowerLossCatchesEarlyCheckpoint(t *testing.T) {
	t.Parallel()
	pl := newPowerLoss(t, powerLossBroken)
	const maxIterations = 12
	for it := range maxIterations {
		var failures []string
		soft(t, func(c testing.TB) { pl.iteration(t, c, it) }, &failures)
		if len(failures) > 0 {
			t.Logf("the broken build was caught in iteration %d of at most %d:\n%s", it+1, maxIterations, strings.Join(failures, "\n"))
			return
		}
	}
	t.Fatalf("%d power cuts of a build whose checkpoint precedes its syncfs went unnoticed", maxIterations)
}

// powerLoss is the state the iterations of one power-loss loop share.
type powerLoss struct {
	dir      string
	mode     string
	rng      *rand.Rand
	prevHead uint64     // head after the last iteration: durable before the child starts
	acks     []crashAck // acknowledged before the power cuts so far
}

func newPowerLoss(t *testing.T, mode string) *powerLoss {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("POSSUM_POWERLOSS_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "POSSUM_POWERLOSS_SEED")
	}
	t.Logf("seed %d (POSSUM_POWERLOSS_SEED=%d replays the workload and the rollback choices)", seed, seed)
	dir := t.TempDir()
	// A store that exists before the first child: its FORMAT file and
	// first checkpoint are durable (Close syncs the file system).
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return &powerLoss{dir: dir, mode: mode, rng: rand.New(rand.NewPCG(seed, 1))}
}

// iteration runs one child, cuts the power, and checks the store the cut
// left with c; t (the test itself) is for everything else.
func (pl *powerLoss) iteration(t *testing.T, c testing.TB, it int) {
	deleted, damagedIndex := 0, ""
	if pl.prevHead > 0 && pl.rng.IntN(3) == 0 {
		deleted = pl.deleteEventFiles(t)
	}
	if pl.prevHead > 0 && pl.rng.IntN(3) == 0 {
		damagedIndex = pl.damageIndexFile(t)
	}
	before := readTree(t, pl.dir, func(rel string) bool { return !strings.HasPrefix(rel, "wal/") && rel != "LOCK" && rel != "FORMAT" })
	// Paced so that the projector keeps up and checkpoints (it does so
	// only once it has caught up): the child is killed once it has written
	// a checkpoint of its own, after a random number of appends.
	target := 10 + pl.rng.IntN(50)
	mode := crashMode{pace: 50 * time.Millisecond, untilCheckpoint: pl.prevHead + 1, powerLoss: pl.mode}
	_, _, lines := crashChild(t, pl.dir, it, pl.rng.Uint64(), mode, target)

	cut := pl.rng.Uint64()
	rb, err := rollBack(pl.dir, before, lines, pl.prevHead, rand.New(rand.NewPCG(cut, 2)))
	require.NoError(t, err, "iteration %d: roll back", it)
	t.Logf("iteration %d (rollback seed %d): %d event files deleted before the child; index file damaged: %q; %s", it, cut, deleted, damagedIndex, rb.summary)

	acks := append(slices.Clone(pl.acks), rb.acks...)
	// What Open repaired is in its report, logged below.
	quiet := &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := store.Open(pl.dir, quiet)
	require.NoError(c, err, "iteration %d: open after the power cut", it)
	t.Cleanup(func() { _ = s.Close() }) // when a check below gives up early
	rep := s.OpenReport()
	t.Logf("iteration %d: open report: torn tail %+v, projection %+v", it, rep.TornTail, rep.Projection)
	require.Empty(c, rep.Projection.CheckpointProblem, "iteration %d: the checkpoint", it)
	require.LessOrEqual(c, rep.Projection.MissingEventFiles, deleted, "iteration %d: event files the checkpoint vouched for were lost (%d deleted on purpose)", it, deleted)
	head := s.Head()
	require.GreaterOrEqual(c, head, rb.maxAck, "iteration %d: an acknowledged append was lost", it)
	require.GreaterOrEqual(c, head, pl.prevHead, "iteration %d: events of an earlier iteration were lost", it)
	var evs []dcb.SequencedEvent
	for e, err := range s.Read(t.Context(), dcb.All(), store.ReadOptions{}) {
		require.NoError(c, err, "iteration %d: read", it)
		require.Equal(c, uint64(len(evs)+1), e.Position, "iteration %d: positions gap-free", it)
		evs = append(evs, e)
	}
	require.Len(c, evs, int(head), "iteration %d: Read returns every event", it)
	requireCrashLog(c, evs, acks)
	requireTagReads(c, s, evs, it)
	require.NoError(c, s.WaitProjected(t.Context(), head), "iteration %d: wait for the projection", it)
	require.NoError(c, s.Close(), "iteration %d: close", it)
	projectiontest.RequireMatches(c, pl.dir, evs)
	cp, err := storedir.ReadCheckpoint(pl.dir)
	require.NoError(c, err)
	assert.Equal(c, head, cp.Position, "iteration %d: checkpoint after Close", it)
	vrep, err := recovery.Verify(pl.dir, nil)
	require.NoError(c, err)
	require.True(c, vrep.Consistent(), "iteration %d: possum verify: %+v", it, vrep.Problems)
	pl.prevHead, pl.acks = head, acks
}

// deleteEventFiles deletes a few event files the checkpoint vouches for and
// gives events/ back its modification time, as TestDeletedEventFilesAfterClose
// does: the child's projector must rewrite them, durably, before its first
// checkpoint. It returns how many it deleted.
func (pl *powerLoss) deleteEventFiles(t *testing.T) int {
	cp, err := storedir.ReadCheckpoint(pl.dir)
	require.NoError(t, err)
	events := filepath.Join(pl.dir, storedir.EventsDir)
	st, err := os.Stat(events)
	require.NoError(t, err)
	n := 1 + pl.rng.IntN(5)
	for range n {
		err := os.Remove(storedir.EventPath(pl.dir, 1+pl.rng.Uint64N(cp.Position)))
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
	require.NoError(t, os.Chtimes(events, st.ModTime(), st.ModTime()))
	return n
}

// damageIndexFile deletes, truncates or extends one index file after the
// clean Close of the last iteration: the child opens from the snapshot that
// Close left, without looking at the index files, and its projector must
// find the damage and rewrite the file, durably, before its first index
// append and its first checkpoint. It returns what it did.
func (pl *powerLoss) damageIndexFile(t *testing.T) string {
	var paths []string
	for _, kind := range []string{"types", "tags"} {
		dir := filepath.Join(pl.dir, storedir.IndexDir, kind)
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	require.NotEmpty(t, paths)
	path := paths[pl.rng.IntN(len(paths))]
	rel, err := filepath.Rel(pl.dir, path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	switch pl.rng.IntN(3) {
	case 0:
		require.NoError(t, os.Remove(path))
		return "deleted " + rel
	case 1:
		require.NoError(t, os.Truncate(path, st.Size()-8))
		return "last entry cut from " + rel
	default:
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.Write(binary.LittleEndian.AppendUint64(nil, pl.prevHead+1000))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		return "entry beyond head added to " + rel
	}
}

// rolledBack is what rollBack did.
type rolledBack struct {
	acks    []crashAck // acknowledged before the cut
	maxAck  uint64
	summary string
}

// rollBack turns the store in dir into what a power cut could have left,
// from before (the projection's files when the child started, all durable),
// the lines the child printed (its acknowledgements and file system calls,
// in order) and the directory after the kill (for the WAL, which the child
// kept appending to and syncing itself).
//
// The cut falls after a random line: the last (the kill), any, or one right
// after a checkpoint's directory sync (where a checkpoint written too early
// is exposed). Only what the lines before it show counts. Then:
//   - the projection: replay the file system calls on a model of inodes and
//     directory entries (plModel); what a completed sync covers is durable;
//     every other call may or may not have reached the disk.
//   - the WAL: every record up to the durable position D is whole, where D
//     is the highest of: the head when the child started, the last
//     acknowledged position, and every position a projector call named (the
//     projector sees a record only once it is synced). The WAL is cut
//     anywhere at or after D's record, part of what remains after that may
//     be zero-filled, and later segments go. The offsets file, derived and
//     never synced, is kept, truncated or partly zeroed.
func rollBack(dir string, before map[string][]byte, lines []string, prevHead uint64, rng *rand.Rand) (rolledBack, error) {
	var rb rolledBack
	cutAt := len(lines)
	var afterCheckpoint []int
	for i, l := range lines {
		if strings.HasPrefix(l, "fs E ") && strings.HasSuffix(l, " ok") && i > 0 {
			// The E line of the checkpoint's SyncDir of the store directory.
			if id := strings.Fields(l)[2]; opOf(lines[:i], id) == `syncdir "."` {
				afterCheckpoint = append(afterCheckpoint, i+1)
			}
		}
	}
	// Half the cuts fall right after a checkpoint's directory sync, the
	// moment a checkpoint protocol is judged by; the others at the kill or
	// anywhere.
	cutKind := "at the kill"
	switch r := rng.IntN(4); {
	case r >= 2 && len(afterCheckpoint) > 0:
		cutAt, cutKind = afterCheckpoint[rng.IntN(len(afterCheckpoint))], "after a checkpoint"
	case r >= 1:
		cutAt, cutKind = rng.IntN(len(lines)+1), "anywhere"
	}
	total := len(lines)
	lines = lines[:cutAt]

	m := newPLModel(before)
	durable := prevHead
	for i, l := range lines {
		if !strings.HasPrefix(l, "fs ") {
			var a crashAck
			if _, err := fmt.Sscanf(l, "%d %d %d %d", &a.last, &a.g, &a.seq, &a.n); err != nil {
				continue // not an acknowledgement
			}
			rb.acks = append(rb.acks, a)
			rb.maxAck = max(rb.maxAck, a.last)
			continue
		}
		if err := m.apply(l); err != nil {
			return rb, fmt.Errorf("line %d %q: %w", i, l, err)
		}
	}
	durable = max(durable, rb.maxAck, m.maxPos)
	if cutKind == "at the kill" {
		// An offsets entry is written only after its record's fsync: every
		// record the offsets file lists at the kill was durable, whether or
		// not its append was acknowledged before the kill.
		durable = max(durable, wal.Vouched(filepath.Join(dir, "wal")))
	}
	files, mtime, projSummary := m.crash(rng, false)

	walFiles := readTree(nil, filepath.Join(dir, "wal"), func(string) bool { return true })
	walSummary, err := cutWAL(walFiles, durable, rng)
	if err != nil {
		return rb, err
	}
	lock, lerr := os.ReadFile(filepath.Join(dir, "LOCK"))
	format, ferr := os.ReadFile(filepath.Join(dir, "FORMAT"))
	if lerr != nil || ferr != nil {
		return rb, fmt.Errorf("LOCK %v, FORMAT %v", lerr, ferr)
	}

	if err := os.RemoveAll(dir); err != nil {
		return rb, err
	}
	for _, d := range []string{"wal", storedir.EventsDir, storedir.TmpDir, "index/types", "index/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return rb, err
		}
	}
	write := func(rel string, b []byte) error {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o640)
	}
	if err := write("LOCK", lock); err != nil {
		return rb, err
	}
	if err := write("FORMAT", format); err != nil {
		return rb, err
	}
	for rel, b := range walFiles {
		if err := write("wal/"+rel, b); err != nil {
			return rb, err
		}
	}
	for rel, b := range files {
		if err := write(rel, b); err != nil {
			return rb, err
		}
	}
	if mtime != 0 {
		// The directory as the checkpoint saw it: what the file system would
		// show had no change to events/ after the checkpoint survived.
		t := time.Unix(0, mtime)
		if err := os.Chtimes(filepath.Join(dir, storedir.EventsDir), t, t); err != nil {
			return rb, err
		}
	}
	rb.summary = fmt.Sprintf("cut %s: after line %d of %d, %d acknowledged before it (last position %d), WAL durable to %d; %s; %s",
		cutKind, cutAt, total, len(rb.acks), rb.maxAck, durable, projSummary, walSummary)
	return rb, nil
}

// opOf returns the op and first argument of the B line of op id in lines.
func opOf(lines []string, id string) string {
	prefix := "fs B " + id + " "
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(lines[i], prefix); ok {
			return rest
		}
	}
	return ""
}

// readTree reads every file under dir whose slash-separated relative path
// keep accepts. A nil t means the caller checks nothing (the tree is read
// after the child's kill and is known to exist).
func readTree(t testing.TB, dir string, keep func(string) bool) map[string][]byte {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if !keep(rel) {
			return nil
		}
		b, err := os.ReadFile(path)
		files[rel] = b
		return err
	})
	if t != nil {
		require.NoError(t, err)
	} else if err != nil {
		panic(err)
	}
	return files
}

// plModel replays a recorded projector's file system calls. It tracks inodes
// (a file's content, durable and pending) apart from directory entries
// (names bound to inodes, durable and pending), as a file system does: a
// rename is durable once its directory is synced, a file's content once the
// file or the whole file system is.
type plModel struct {
	inodes  []*plInode          // by number; 0 is "no file"
	durable map[string]int      // the entries a power cut keeps
	cur     map[string]int      // the entries as the child saw them
	pending []*plEntryChange    // entry changes not yet durable, in order
	handles map[string]int      // open op id → inode
	paths   map[string]string   // open op id → path opened
	cpNames map[int][]string    // checkpoint inode → events/ names when it was renamed into place
	ops     map[string][]string // op id → its B line's fields, until its E line
	maxPos  uint64              // the highest position a projector call named
}

type plInode struct {
	durable []byte
	pending []plWrite // since the inode was last synced
}

// plWrite is a write of data at off, or (truncate) a change of size.
type plWrite struct {
	truncate bool
	off      int64
	data     []byte
}

func (w plWrite) apply(b []byte) []byte {
	if w.truncate {
		if w.off <= int64(len(b)) {
			return b[:w.off]
		}
		return append(b, make([]byte, w.off-int64(len(b)))...)
	}
	if end := w.off + int64(len(w.data)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[w.off:], w.data)
	return b
}

// plEntryChange is one call's changes to directory entries (a rename has
// two); a power cut keeps all of its not yet durable effects or none.
type plEntryChange struct{ effects []plEffect }

type plEffect struct {
	path    string
	inode   int // 0: the entry is removed
	durable bool
}

func newPLModel(before map[string][]byte) *plModel {
	m := &plModel{inodes: []*plInode{nil}, durable: map[string]int{}, cur: map[string]int{},
		handles: map[string]int{}, paths: map[string]string{}, cpNames: map[int][]string{}, ops: map[string][]string{}}
	for rel, b := range before {
		ino := m.newInode()
		m.inodes[ino].durable = slices.Clone(b)
		m.durable[rel], m.cur[rel] = ino, ino
	}
	if ino := m.cur[storedir.CheckpointFile]; ino != 0 {
		m.cpNames[ino] = m.eventNames(m.cur)
	}
	return m
}

func (m *plModel) newInode() int {
	m.inodes = append(m.inodes, &plInode{})
	return len(m.inodes) - 1
}

func (m *plModel) eventNames(entries map[string]int) []string {
	var names []string
	for p, ino := range entries {
		if ino != 0 && strings.HasPrefix(p, storedir.EventsDir+"/") {
			names = append(names, p)
		}
	}
	slices.Sort(names)
	return names
}

func (m *plModel) change(effects ...plEffect) {
	for _, e := range effects {
		if e.inode == 0 {
			delete(m.cur, e.path)
		} else {
			m.cur[e.path] = e.inode
		}
	}
	m.pending = append(m.pending, &plEntryChange{effects: effects})
}

// notePosition notes a position a projector call names in path (an event
// file) or in data (the checkpoint).
func (m *plModel) notePosition(path string, data []byte) {
	if name, ok := strings.CutPrefix(path, storedir.EventsDir+"/"); ok {
		if pos, ok := storedir.ParseEventFileName(name); ok {
			m.maxPos = max(m.maxPos, pos)
		}
	}
	if path == storedir.TmpDir+"/"+storedir.CheckpointFile {
		var cp storedir.Checkpoint
		if json.Unmarshal(data, &cp) == nil {
			m.maxPos = max(m.maxPos, cp.Position)
		}
	}
}

// apply replays one line: "fs B <id> <op> <args>" or "fs E <id> <ok|err>".
func (m *plModel) apply(line string) error {
	f := strings.Fields(line)
	if len(f) < 4 {
		return fmt.Errorf("short line")
	}
	id := f[2]
	if f[1] == "E" {
		op := m.ops[id]
		delete(m.ops, id)
		if op == nil {
			return fmt.Errorf("E line of unknown op %s", id)
		}
		if f[3] == "ok" {
			m.synced(op)
		}
		return nil
	}
	op, args := f[3], f[4:]
	m.ops[id] = f[3:]
	path := func(i int) (string, error) {
		if i >= len(args) {
			return "", fmt.Errorf("missing argument %d", i)
		}
		return strconv.Unquote(args[i])
	}
	switch op {
	case "open":
		flag, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		p, err := path(1)
		if err != nil {
			return err
		}
		ino := m.cur[p]
		if ino == 0 {
			if flag&os.O_CREATE == 0 {
				return fmt.Errorf("open of missing %s", p)
			}
			ino = m.newInode()
			m.change(plEffect{path: p, inode: ino})
		}
		if flag&os.O_TRUNC != 0 {
			m.inodes[ino].pending = append(m.inodes[ino].pending, plWrite{truncate: true})
		}
		m.handles[id], m.paths[id] = ino, p
	case "write":
		ino, ok := m.handles[args[0]]
		if !ok || len(args) != 3 {
			return fmt.Errorf("bad write")
		}
		off, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return err
		}
		data, err := base64.StdEncoding.DecodeString(args[2])
		if err != nil {
			return err
		}
		m.inodes[ino].pending = append(m.inodes[ino].pending, plWrite{off: off, data: data})
		m.notePosition(m.paths[args[0]], data)
	case "rename":
		from, err := path(0)
		if err != nil {
			return err
		}
		to, err := path(1)
		if err != nil {
			return err
		}
		ino := m.cur[from]
		if ino == 0 {
			return fmt.Errorf("rename of missing %s", from)
		}
		m.change(plEffect{path: from}, plEffect{path: to, inode: ino})
		m.notePosition(to, nil)
		if to == storedir.CheckpointFile {
			m.cpNames[ino] = m.eventNames(m.cur)
		}
	case "remove", "removeall":
		p, err := path(0)
		if err != nil {
			return err
		}
		var effects []plEffect
		for q := range m.cur {
			if q == p || (op == "removeall" && strings.HasPrefix(q, p+"/")) {
				effects = append(effects, plEffect{path: q})
			}
		}
		m.change(effects...)
	case "truncate":
		p, err := path(0)
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return err
		}
		if ino := m.cur[p]; ino != 0 {
			m.inodes[ino].pending = append(m.inodes[ino].pending, plWrite{truncate: true, off: size})
		}
	case "fsync", "syncdir", "syncfs", "mkdirall":
		// Effects come with the E line (synced), or none.
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	return nil
}

// synced applies what a completed op made durable.
func (m *plModel) synced(op []string) {
	settle := func(ino *plInode) {
		for _, w := range ino.pending {
			ino.durable = w.apply(ino.durable)
		}
		ino.pending = nil
	}
	switch op[0] {
	case "fsync":
		if ino, ok := m.handles[op[1]]; ok {
			settle(m.inodes[ino])
		}
	case "syncdir", "syncfs":
		dir, _ := strconv.Unquote(op[1])
		for _, c := range m.pending {
			for i, e := range c.effects {
				if !e.durable && (op[0] == "syncfs" || filepath.Dir(e.path) == dir) {
					c.effects[i].durable = true
					if e.inode == 0 {
						delete(m.durable, e.path)
					} else {
						m.durable[e.path] = e.inode
					}
				}
			}
		}
		if op[0] == "syncfs" {
			m.pending = nil
			for _, ino := range m.inodes[1:] {
				settle(ino)
			}
		}
	}
}

// crash returns the projection's files after a power cut: each pending entry
// change kept or lost, each file's pending writes kept up to a random one,
// that one lost, torn or zero-filled; or, worst, every pending entry change
// kept and every pending write lost. It also returns the modification time
// events/ would show (0: a new one): the checkpoint's, when the checkpoint
// that survived saw the same event files.
func (m *plModel) crash(rng *rand.Rand, worst bool) (map[string][]byte, int64, string) {
	keep := 1.0
	if !worst {
		keep = rng.Float64()
	}
	entries := maps.Clone(m.durable)
	changes, kept := 0, 0
	for _, c := range m.pending {
		undecided := false
		for _, e := range c.effects {
			undecided = undecided || !e.durable
		}
		if !undecided {
			continue
		}
		changes++
		if !worst && rng.Float64() >= keep {
			continue
		}
		kept++
		for _, e := range c.effects {
			if e.durable {
				continue
			}
			if e.inode == 0 {
				delete(entries, e.path)
			} else {
				entries[e.path] = e.inode
			}
		}
	}
	contents := map[int][]byte{}
	writes, lostWrites := 0, 0
	files := map[string][]byte{}
	for _, p := range slices.Sorted(maps.Keys(entries)) {
		ino := entries[p]
		b, ok := contents[ino]
		if !ok {
			in := m.inodes[ino]
			b = slices.Clone(in.durable)
			k := 0
			if !worst {
				k = rng.IntN(len(in.pending) + 1)
			}
			for _, w := range in.pending[:k] {
				b = w.apply(b)
			}
			writes += len(in.pending)
			lostWrites += len(in.pending) - k
			if k < len(in.pending) && !in.pending[k].truncate && !worst {
				w := in.pending[k]
				switch rng.IntN(3) {
				case 1: // torn: a prefix of it
					w.data = w.data[:rng.IntN(len(w.data)+1)]
					b = w.apply(b)
				case 2: // the size grew, the data never came
					w.data = make([]byte, len(w.data))
					b = w.apply(b)
				}
			}
			contents[ino] = b
		}
		files[p] = b
	}
	var mtime int64
	if ino := entries[storedir.CheckpointFile]; ino != 0 {
		if names, ok := m.cpNames[ino]; ok && slices.Equal(names, m.eventNames(entries)) {
			var cp storedir.Checkpoint
			if json.Unmarshal(files[storedir.CheckpointFile], &cp) == nil {
				mtime = cp.EventsMTime
			}
		}
	}
	return files, mtime, fmt.Sprintf("projection: %d of %d pending entry changes kept, %d of %d pending writes lost, events/ mtime restored: %v",
		kept, changes, lostWrites, writes, mtime != 0)
}

// cutWAL cuts the WAL files (by name under wal/) as a power cut could: every
// record up to position durable stays whole; the segments may lose, or hold
// zeros in, anything after.
func cutWAL(files map[string][]byte, durable uint64, rng *rand.Rand) (string, error) {
	var segs []string
	for name := range files {
		if len(name) == 20 && strings.Trim(name, "0123456789") == "" {
			segs = append(segs, name)
		}
	}
	slices.Sort(segs)
	if len(segs) == 0 {
		return "", fmt.Errorf("no WAL segment")
	}
	// Where the record holding durable ends.
	seg, end, found := 0, 0, durable == 0
	for i, name := range segs {
		b := files[name]
		for off := 0; off < len(b) && !found; {
			size, n := binary.Uvarint(b[off:])
			if n <= 0 || size > uint64(len(b)-off-n) {
				break
			}
			rec, err := wal.DecodeFrame(b[off+n : off+n+int(size)])
			if err != nil {
				break
			}
			off += n + int(size)
			if rec.LastPosition() >= durable {
				seg, end, found = i, off, true
			}
		}
		if found {
			break
		}
	}
	if !found {
		return "", fmt.Errorf("the WAL does not hold position %d, durable before the cut", durable)
	}
	var summary string
	if rng.IntN(4) == 0 {
		summary = "WAL kept whole"
	} else {
		j := seg + rng.IntN(len(segs)-seg)
		lo := 0
		if j == seg {
			lo = end
		}
		b := files[segs[j]]
		cut := lo + rng.IntN(len(b)-lo+1)
		b = b[:cut]
		for _, name := range segs[j+1:] {
			delete(files, name)
		}
		summary = fmt.Sprintf("WAL segment %s cut from %d to %d bytes (durable part ends at %d of segment %s), %d later segments removed",
			segs[j], len(files[segs[j]]), cut, end, segs[seg], len(segs)-j-1)
		if rng.IntN(3) == 0 && cut > lo {
			z := lo + rng.IntN(cut-lo)
			b = slices.Clone(b)
			clear(b[z:])
			summary += fmt.Sprintf(", zeros from %d", z)
		}
		files[segs[j]] = b
		if j > seg && len(b) == 0 {
			delete(files, segs[j])
		}
	}
	if b, ok := files["offsets"]; ok {
		// Entries of records past the durable point may not have been
		// written at the moment of the cut (an earlier moment than the kill),
		// and were never synced: they go, so that the offsets file vouches
		// for no record the cut may have dropped.
		b = offsetsUpTo(b, durable)
		files["offsets"] = b
		switch rng.IntN(3) {
		case 1:
			n := rng.IntN(len(b) + 1)
			files["offsets"] = b[:n]
			summary += fmt.Sprintf("; offsets cut to %d of %d bytes", n, len(b))
		case 2:
			from := rng.IntN(len(b) + 1)
			to := from + rng.IntN(len(b)-from+1)
			b = slices.Clone(b)
			clear(b[from:to])
			files["offsets"] = b
			summary += fmt.Sprintf("; offsets zeroed in [%d,%d) of %d bytes", from, to, len(b))
		}
	}
	return summary, nil
}

// offsetsUpTo returns the WAL offsets file b without the entries of records
// ending after position last (see wal/offsets.go for the format: an 8-byte
// header, then 32-byte entries, first position at 0, event count at 24).
func offsetsUpTo(b []byte, last uint64) []byte {
	const header, entry = 8, 32
	n := header
	for n+entry <= len(b) {
		e := b[n : n+entry]
		first, count := binary.LittleEndian.Uint64(e[0:]), uint64(binary.LittleEndian.Uint32(e[24:]))
		if count == 0 || first+count-1 > last {
			break
		}
		n += entry
	}
	return b[:min(n, len(b))]
}

// softT collects the failures of checks run on it instead of failing the
// test: for a test that expects a check to fail.
type softT struct {
	testing.TB
	mu       sync.Mutex
	failures *[]string
}

func (s *softT) Helper() {}

func (s *softT) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.failures = append(*s.failures, fmt.Sprintf(format, args...))
}

func (s *softT) Error(args ...any) { s.Errorf("%s", fmt.Sprint(args...)) }

func (s *softT) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.FailNow()
}

func (s *softT) Fatal(args ...any) { s.Error(args...); s.FailNow() }

func (s *softT) FailNow() { runtime.Goexit() }

func (s *softT) Fail() { s.Errorf("failed") }

func (s *softT) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(*s.failures) > 0
}

// soft runs check on a softT in its own goroutine (FailNow ends it) and
// appends what failed to failures. Failures of t itself (setting up, the
// child) still fail the test.
func soft(t *testing.T, check func(testing.TB), failures *[]string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(&softT{TB: t, failures: failures})
	}()
	<-done
}
