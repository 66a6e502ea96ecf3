// Package sqlitestore is the SQLite peer of the benchmark: a DCB event store
// with possum's semantics on SQLite (modernc.org/sqlite, pure Go), built the
// way a Go developer would build one.
//
//   - WAL journal, synchronous=FULL: a commit returns once the WAL is fsync'd.
//   - events(position INTEGER PRIMARY KEY, type, tags, data, metadata,
//     timestamp) with an index on (type, position); tags(tag, position), a
//     WITHOUT ROWID table whose primary key is the (tag, position) index. The
//     events table keeps each event's tags too (a JSON array, in the order
//     given) so a read rebuilds an event from one row; the tags table is the
//     index. Types and tags are BLOBs so any byte string matches exactly.
//   - Append runs the condition check (one EXISTS over the UNION ALL of the
//     query items after After) and the inserts in one BEGIN IMMEDIATE
//     transaction, on a pool of one writer connection: appends queue in Go
//     rather than spin in SQLite's busy handler. A busy timeout still makes
//     any other connection wait rather than fail.
//   - Reads run on a separate pool; each is one statement, so one snapshot.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Options configure a store.
type Options struct {
	// NoSync sets synchronous=OFF: commits are not fsync'd (a machine crash
	// may lose acknowledged appends). For loading stores that only reads
	// measure.
	NoSync bool
}

// Store is a DCB event store in one SQLite database file.
type Store struct {
	w, r   *sql.DB
	wstmts stmtCache
	rstmts stmtCache
	head   atomic.Uint64 // last committed position
}

var _ workload.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	position  INTEGER PRIMARY KEY,
	type      BLOB NOT NULL,
	tags      TEXT,
	data      BLOB,
	metadata  TEXT,
	timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events(type, position);
CREATE TABLE IF NOT EXISTS tags (
	tag      BLOB NOT NULL,
	position INTEGER NOT NULL,
	PRIMARY KEY (tag, position)
) WITHOUT ROWID;`

// Open opens (creating when needed) the store in dir/events.sqlite.
func Open(dir string, opts Options) (*Store, error) {
	syncMode := "FULL"
	if opts.NoSync {
		syncMode = "OFF"
	}
	dsn := "file:" + filepath.Join(dir, "events.sqlite") +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + syncMode + ")"
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := w.Exec(stmt); err != nil {
			return nil, errors.Join(fmt.Errorf("sqlitestore: schema: %w", err), w.Close())
		}
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlitestore: %w", err), w.Close())
	}
	r.SetMaxIdleConns(16)
	s := &Store{w: w, r: r, wstmts: stmtCache{db: w}, rstmts: stmtCache{db: r}}
	var head int64
	if err := w.QueryRow("SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlitestore: head: %w", err), s.Close())
	}
	s.head.Store(uint64(head))
	return s, nil
}

// Head returns the last committed position, 0 when empty.
func (s *Store) Head() uint64 { return s.head.Load() }

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.rstmts.close(), s.wstmts.close(), s.r.Close(), s.w.Close())
}

// Append checks cond and inserts events in one immediate transaction.
func (s *Store) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if err := dcb.ValidateBatch(events); err != nil {
		return 0, fmt.Errorf("sqlitestore: append: %w", err)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return 0, fmt.Errorf("sqlitestore: append condition: %w", err)
		}
	}
	type row struct {
		typ, data    []byte
		tags, meta   any
		eventTagList []string
	}
	rows := make([]row, len(events))
	for i, e := range events {
		e = e.Normalized()
		r := row{typ: []byte(e.Type), data: e.Data, eventTagList: e.Tags}
		if len(e.Data) == 0 {
			r.data = nil
		}
		if len(e.Tags) > 0 {
			b, err := json.Marshal(e.Tags)
			if err != nil {
				return 0, fmt.Errorf("sqlitestore: append: %w", err)
			}
			r.tags = string(b)
		}
		if e.Metadata != nil {
			b, err := json.Marshal(e.Metadata)
			if err != nil {
				return 0, fmt.Errorf("sqlitestore: append: %w", err)
			}
			r.meta = string(b)
		}
		rows[i] = r
	}

	// Every statement is prepared before the transaction takes the one
	// writer connection (preparing on the pool inside it would wait forever).
	var check *sql.Stmt
	var checkArgs []any
	if cond != nil {
		var text string
		text, checkArgs = conditionQuery(cond.FailIfEventsMatch, after(cond.After))
		var err error
		if check, err = s.wstmts.get(ctx, text); err != nil {
			return 0, err
		}
	}
	headStmt, err := s.wstmts.get(ctx, "SELECT COALESCE(MAX(position), 0) FROM events")
	if err != nil {
		return 0, err
	}
	insEvent, err := s.wstmts.get(ctx, "INSERT INTO events (position, type, tags, data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return 0, err
	}
	insTag, err := s.wstmts.get(ctx, "INSERT INTO tags (tag, position) VALUES (?, ?)")
	if err != nil {
		return 0, err
	}

	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var head int64
	if err := tx.StmtContext(ctx, headStmt).QueryRowContext(ctx).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlitestore: head: %w", err)
	}
	if check != nil {
		var exists bool
		if err := tx.StmtContext(ctx, check).QueryRowContext(ctx, checkArgs...).Scan(&exists); err != nil {
			return 0, fmt.Errorf("sqlitestore: condition: %w", err)
		}
		if exists {
			return 0, fmt.Errorf("sqlitestore: %w", dcb.ErrAppendConditionFailed)
		}
	}
	insEvent, insTag = tx.StmtContext(ctx, insEvent), tx.StmtContext(ctx, insTag)
	now := time.Now().UTC().UnixNano()
	for i, r := range rows {
		pos := head + 1 + int64(i)
		if _, err := insEvent.ExecContext(ctx, pos, r.typ, r.tags, r.data, r.meta, now); err != nil {
			return 0, fmt.Errorf("sqlitestore: insert event %d: %w", pos, err)
		}
		for _, tag := range r.eventTagList {
			if _, err := insTag.ExecContext(ctx, []byte(tag), pos); err != nil {
				return 0, fmt.Errorf("sqlitestore: insert tag of %d: %w", pos, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlitestore: commit: %w", err)
	}
	last := uint64(head) + uint64(len(rows))
	for {
		h := s.head.Load()
		if h >= last || s.head.CompareAndSwap(h, last) {
			return last, nil
		}
	}
}

// after returns the lowest position a condition with After counts, clamped
// to SQLite's integer range.
func after(a uint64) int64 {
	if a >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(a) + 1
}

// conditionQuery returns one EXISTS over the query's items in [lo, ∞).
func conditionQuery(q dcb.Query, lo int64) (string, []any) {
	if q.IsAll() {
		return "SELECT EXISTS (SELECT 1 FROM events WHERE position >= ?)", []any{lo}
	}
	var subs []string
	var args []any
	for _, it := range q.Items {
		sub, a := itemQuery(it, "", lo, math.MaxInt64)
		subs = append(subs, sub)
		args = append(args, a...)
	}
	return "SELECT EXISTS (" + strings.Join(subs, " UNION ALL ") + ")", args
}

const eventCols = "e.position, e.type, e.tags, e.data, e.metadata, e.timestamp"

// itemQuery selects cols (the position when cols is empty) of the events in
// [lo, hi] that match it. Tag items are driven by the first tag's index
// range; types are checked on the events row. It returns the SQL and its
// arguments in placeholder order, and the column to order by.
func itemQuery(it dcb.QueryItem, cols string, lo, hi int64) (string, []any) {
	var b strings.Builder
	var args []any
	if len(it.Tags) == 0 {
		if cols == "" {
			cols = "e.position"
		}
		b.WriteString("SELECT " + cols + " FROM events e WHERE e.type IN (" + marks(len(it.Types)) + ") AND e.position BETWEEN ? AND ?")
		args = appendBlobs(args, it.Types)
		return b.String(), append(args, lo, hi)
	}
	if cols == "" {
		cols = "t0.position"
	}
	b.WriteString("SELECT " + cols + " FROM tags t0")
	for i, tag := range it.Tags[1:] {
		fmt.Fprintf(&b, " JOIN tags t%d ON t%d.tag = ? AND t%d.position = t0.position", i+1, i+1, i+1)
		args = append(args, []byte(tag))
	}
	if cols != "t0.position" || len(it.Types) > 0 {
		b.WriteString(" JOIN events e ON e.position = t0.position")
		if len(it.Types) > 0 {
			b.WriteString(" AND e.type IN (" + marks(len(it.Types)) + ")")
			args = appendBlobs(args, it.Types)
		}
	}
	b.WriteString(" WHERE t0.tag = ? AND t0.position BETWEEN ? AND ?")
	return b.String(), append(args, []byte(it.Tags[0]), lo, hi)
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func appendBlobs(args []any, ss []string) []any {
	for _, s := range ss {
		args = append(args, []byte(s))
	}
	return args
}

// readQuery returns the statement that reads q in [lo, hi].
func readQuery(q dcb.Query, lo, hi int64, backwards bool, limit int) (string, []any) {
	dir := " ASC"
	if backwards {
		dir = " DESC"
	}
	lim := int64(-1)
	if limit > 0 {
		lim = int64(limit)
	}
	switch len(q.Items) {
	case 0:
		return "SELECT " + eventCols + " FROM events e WHERE e.position BETWEEN ? AND ? ORDER BY e.position" + dir + " LIMIT ?", []any{lo, hi, lim}
	case 1:
		// One item: a join the planner streams in index order, so a Limit
		// stops it early.
		sql, args := itemQuery(q.Items[0], eventCols, lo, hi)
		order := "t0.position"
		if len(q.Items[0].Tags) == 0 {
			order = "e.position"
		}
		return sql + " ORDER BY " + order + dir + " LIMIT ?", append(args, lim)
	}
	var subs []string
	var args []any
	for _, it := range q.Items {
		sub, a := itemQuery(it, "", lo, hi)
		subs = append(subs, sub)
		args = append(args, a...)
	}
	return "SELECT " + eventCols + " FROM events e WHERE e.position IN (" + strings.Join(subs, " UNION ") + ") ORDER BY e.position" + dir + " LIMIT ?", append(args, lim)
}

// Read yields the events matching q as store.Store.Read does, from one
// statement: a snapshot of the appends committed when Read was called.
func (s *Store) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	head := s.head.Load()
	return func(yield func(dcb.SequencedEvent, error) bool) {
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read: %w", err))
			return
		}
		lo, hi, err := o.Span(head)
		if err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read: %w", err))
			return
		}
		if lo > hi {
			return
		}
		text, args := readQuery(q, int64(lo), int64(hi), o.Backwards, o.Limit)
		stmt, err := s.rstmts.get(ctx, text)
		if err != nil {
			yield(dcb.SequencedEvent{}, err)
			return
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read: %w", err))
			return
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var (
				e                  dcb.SequencedEvent
				typ, data          []byte
				tagsJSON, metaJSON sql.RawBytes
				ts                 int64
			)
			if err := rows.Scan(&e.Position, &typ, &tagsJSON, &data, &metaJSON, &ts); err != nil {
				yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read: %w", err))
				return
			}
			e.Type, e.Timestamp = string(typ), time.Unix(0, ts).UTC()
			if len(data) > 0 {
				e.Data = data
			}
			if len(tagsJSON) > 0 {
				if err := json.Unmarshal(tagsJSON, &e.Tags); err != nil {
					yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read tags of %d: %w", e.Position, err))
					return
				}
			}
			if len(metaJSON) > 0 {
				if err := json.Unmarshal(metaJSON, &e.Metadata); err != nil {
					yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read metadata of %d: %w", e.Position, err))
					return
				}
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("sqlitestore: read: %w", err))
		}
	}
}

// stmtCache keeps one prepared statement per SQL text, as a long-running
// application would.
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, text string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[text]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare %q: %w", text, err)
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*sql.Stmt)
	}
	c.stmts[text] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(errs...)
}
