// Package boltstore is the bbolt peer of the benchmark: a DCB event store
// with possum's semantics on go.etcd.io/bbolt, built the way a Go developer
// would build one.
//
//   - Bucket "events": key the big-endian position, value the event
//     (encoded below).
//   - Bucket "index": one empty-valued key per (type, position) and per
//     (tag, position): a kind byte ('t' type, 'g' tag), the name's length
//     (4 bytes, big-endian), the name, the big-endian position. The length
//     prefix keeps names from colliding ("ab"+"c" vs "a"+"bc"); the keys of
//     one name sort by position, so "any match after X" is one cursor Seek.
//   - Append checks the condition inside the write transaction, by cursor
//     seeks: a type item seeks (type, After+1) for each type; a tag item
//     walks the first tag's positions after After and checks the event's
//     other tags and type. It then puts the events and index keys.
//   - With Options.Batch, appends go through db.Batch, which may combine
//     concurrent appends into one transaction (and one fsync) and may call
//     the function more than once: it is idempotent (it recomputes
//     everything from the transaction), and a failed condition is reported
//     through the function's result rather than as its error, so that it
//     does not roll back the other appends of the batch.
//   - A Read runs in one read transaction (a snapshot), merging the index
//     ranges of the query's items in position order.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
	bolt "go.etcd.io/bbolt"
)

// Options configure a store.
type Options struct {
	// Batch appends through db.Batch instead of db.Update.
	Batch bool
	// NoSync skips the fsync of each commit (a machine crash may lose
	// acknowledged appends). For loading stores that only reads measure.
	NoSync bool
}

// Store is a DCB event store in one bbolt file.
type Store struct {
	db    *bolt.DB
	batch bool
	head  atomic.Uint64 // last committed position
}

var _ workload.Store = (*Store)(nil)

var (
	eventsBucket = []byte("events")
	indexBucket  = []byte("index")
)

const (
	kindType = 't'
	kindTag  = 'g'
)

// errConditionFailed is what the append function returns to its caller
// when the condition fails; Append wraps dcb.ErrAppendConditionFailed.
var errConditionFailed = errors.New("boltstore: condition failed")

// Open opens (creating when needed) the store in dir/events.bolt.
func Open(dir string, opts Options) (*Store, error) {
	db, err := bolt.Open(filepath.Join(dir, "events.bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db.NoSync = opts.NoSync
	s := &Store{db: db, batch: opts.Batch}
	err = db.Update(func(tx *bolt.Tx) error {
		ev, err := tx.CreateBucketIfNotExists(eventsBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(indexBucket); err != nil {
			return err
		}
		s.head.Store(lastPosition(ev))
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("boltstore: %w", err), db.Close())
	}
	return s, nil
}

// Head returns the last committed position, 0 when empty.
func (s *Store) Head() uint64 { return s.head.Load() }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Append checks cond and puts events in one write transaction.
func (s *Store) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if err := dcb.ValidateBatch(events); err != nil {
		return 0, fmt.Errorf("boltstore: append: %w", err)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return 0, fmt.Errorf("boltstore: append condition: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	batch := make([]dcb.Event, len(events))
	for i, e := range events {
		batch[i] = e.Normalized()
	}
	// The result of the last call of fn is the one that committed: Batch
	// may call fn again after a rollback, and fn starts afresh each time.
	var last uint64
	var failed bool
	fn := func(tx *bolt.Tx) error {
		last, failed = 0, false
		l, err := appendTx(tx, batch, cond)
		if errors.Is(err, errConditionFailed) {
			failed = true
			return nil // nothing was put; the other appends of a batch go on
		}
		last = l
		return err
	}
	var err error
	if s.batch {
		err = s.db.Batch(fn)
	} else {
		err = s.db.Update(fn)
	}
	if err != nil {
		return 0, fmt.Errorf("boltstore: append: %w", err)
	}
	if failed {
		return 0, fmt.Errorf("boltstore: %w", dcb.ErrAppendConditionFailed)
	}
	for {
		h := s.head.Load()
		if h >= last || s.head.CompareAndSwap(h, last) {
			return last, nil
		}
	}
}

// appendTx checks cond and puts batch after the last position, returning
// the new last position, or errConditionFailed having put nothing.
func appendTx(tx *bolt.Tx, batch []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	ev, idx := tx.Bucket(eventsBucket), tx.Bucket(indexBucket)
	ev.FillPercent = 1 // positions only grow: pack the pages
	if cond != nil {
		found, err := matchAfter(ev, idx, cond.FailIfEventsMatch, cond.After)
		if err != nil {
			return 0, err
		}
		if found {
			return 0, errConditionFailed
		}
	}
	head := lastPosition(ev)
	now := time.Now().UTC()
	for i, e := range batch {
		pos := head + 1 + uint64(i)
		if err := ev.Put(be(pos), encode(e, now)); err != nil {
			return 0, err
		}
		if err := idx.Put(indexKey(kindType, e.Type, pos), []byte{}); err != nil {
			return 0, err
		}
		for _, tag := range e.Tags {
			if err := idx.Put(indexKey(kindTag, tag, pos), []byte{}); err != nil {
				return 0, err
			}
		}
	}
	return head + uint64(len(batch)), nil
}

// matchAfter reports whether an event after position after matches q.
func matchAfter(ev, idx *bolt.Bucket, q dcb.Query, after uint64) (bool, error) {
	if after == math.MaxUint64 {
		return false, nil
	}
	lo := after + 1
	if q.IsAll() {
		k, _ := ev.Cursor().Seek(be(lo))
		return k != nil, nil
	}
	c := idx.Cursor()
	for _, it := range q.Items {
		if len(it.Tags) == 0 {
			for _, t := range it.Types {
				prefix := indexPrefix(kindType, t)
				if k, _ := c.Seek(append(prefix, be(lo)...)); k != nil && bytes.HasPrefix(k, prefix) {
					return true, nil
				}
			}
			continue
		}
		prefix := indexPrefix(kindTag, it.Tags[0])
		for k, _ := c.Seek(append(prefix, be(lo)...)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(it.Tags) == 1 && len(it.Types) == 0 {
				return true, nil
			}
			e, err := decode(ev.Get(k[len(prefix):]))
			if err != nil {
				return false, err
			}
			if it.Matches(e.Event) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Read yields the events matching q as store.Store.Read does, from one read
// transaction.
func (s *Store) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	head := s.head.Load()
	return func(yield func(dcb.SequencedEvent, error) bool) {
		if err := q.Validate(); err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("boltstore: read: %w", err))
			return
		}
		lo, hi, err := o.Span(head)
		if err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("boltstore: read: %w", err))
			return
		}
		if lo > hi {
			return
		}
		tx, err := s.db.Begin(false)
		if err != nil {
			yield(dcb.SequencedEvent{}, fmt.Errorf("boltstore: read: %w", err))
			return
		}
		defer func() { _ = tx.Rollback() }()
		ev, idx := tx.Bucket(eventsBucket), tx.Bucket(indexBucket)
		var streams []*stream
		if q.IsAll() {
			streams = append(streams, newStream(ev.Cursor(), nil, lo, hi, o.Backwards))
		} else {
			for _, it := range q.Items {
				if len(it.Tags) > 0 {
					// The first tag's range drives; Matches filters the rest.
					streams = append(streams, newStream(idx.Cursor(), indexPrefix(kindTag, it.Tags[0]), lo, hi, o.Backwards))
					continue
				}
				for _, t := range it.Types {
					streams = append(streams, newStream(idx.Cursor(), indexPrefix(kindType, t), lo, hi, o.Backwards))
				}
			}
		}
		n := 0
		for step := 0; o.Limit == 0 || n < o.Limit; step++ {
			if step%64 == 0 {
				if err := ctx.Err(); err != nil {
					yield(dcb.SequencedEvent{}, err)
					return
				}
			}
			pos, ok := next(streams, o.Backwards)
			if !ok {
				return
			}
			e, err := decode(ev.Get(be(pos)))
			if err != nil {
				yield(dcb.SequencedEvent{}, fmt.Errorf("boltstore: read position %d: %w", pos, err))
				return
			}
			if !q.Matches(e.Event) {
				continue
			}
			e.Position = pos
			n++
			if !yield(e, nil) {
				return
			}
		}
	}
}

// stream walks the positions of one index range (prefix + big-endian
// position keys; the events bucket is the range with no prefix) within
// [lo, hi], ascending or descending.
type stream struct {
	c         *bolt.Cursor
	prefix    []byte
	lo, hi    uint64
	backwards bool
	pos       uint64
	ok        bool
}

func newStream(c *bolt.Cursor, prefix []byte, lo, hi uint64, backwards bool) *stream {
	s := &stream{c: c, prefix: prefix, lo: lo, hi: hi, backwards: backwards}
	if !backwards {
		k, _ := c.Seek(append(bytes.Clone(prefix), be(lo)...))
		s.set(k)
		return s
	}
	target := append(bytes.Clone(prefix), be(hi)...)
	k, _ := c.Seek(target)
	switch {
	case k == nil:
		k, _ = c.Last()
	case !bytes.Equal(k, target):
		k, _ = c.Prev()
	}
	s.set(k)
	return s
}

func (s *stream) set(k []byte) {
	s.ok = false
	if k == nil || len(k) != len(s.prefix)+8 || !bytes.HasPrefix(k, s.prefix) {
		return
	}
	s.pos = binary.BigEndian.Uint64(k[len(s.prefix):])
	s.ok = s.pos >= s.lo && s.pos <= s.hi
}

func (s *stream) advance() {
	var k []byte
	if s.backwards {
		k, _ = s.c.Prev()
	} else {
		k, _ = s.c.Next()
	}
	s.set(k)
}

// next returns the next position of the merged streams (each once) and
// advances every stream at it.
func next(streams []*stream, backwards bool) (uint64, bool) {
	var pos uint64
	found := false
	for _, s := range streams {
		if s.ok && (!found || (backwards && s.pos > pos) || (!backwards && s.pos < pos)) {
			pos, found = s.pos, true
		}
	}
	if !found {
		return 0, false
	}
	for _, s := range streams {
		if s.ok && s.pos == pos {
			s.advance()
		}
	}
	return pos, true
}

func lastPosition(ev *bolt.Bucket) uint64 {
	k, _ := ev.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func be(pos uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), pos) }

func indexPrefix(kind byte, name string) []byte {
	b := make([]byte, 0, 1+4+len(name)+8)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	return append(b, name...)
}

func indexKey(kind byte, name string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(indexPrefix(kind, name), pos)
}

// encode lays an event out as: timestamp (8 bytes, big-endian Unix
// nanoseconds), then uvarint-length-prefixed strings: the type, the tag
// count and each tag, the data, the metadata count and each key and value.
func encode(e dcb.Event, ts time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(ts.UnixNano()))
	b = appendString(b, e.Type)
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = appendString(b, t)
	}
	b = appendString(b, string(e.Data))
	b = binary.AppendUvarint(b, uint64(len(e.Metadata)))
	for k, v := range e.Metadata {
		b = appendString(appendString(b, k), v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errShort = errors.New("boltstore: event record too short")

// decode copies what it returns: bbolt's bytes live only as long as the
// transaction.
func decode(b []byte) (dcb.SequencedEvent, error) {
	var e dcb.SequencedEvent
	if len(b) < 8 {
		return e, errShort
	}
	e.Timestamp = time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
	b = b[8:]
	next := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	count := func() (int, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)) {
			return 0, false
		}
		b = b[w:]
		return int(n), true
	}
	var ok bool
	if e.Type, ok = next(); !ok {
		return e, errShort
	}
	nt, ok := count()
	if !ok {
		return e, errShort
	}
	if nt > 0 {
		e.Tags = make([]string, nt)
		for i := range e.Tags {
			if e.Tags[i], ok = next(); !ok {
				return e, errShort
			}
		}
	}
	data, ok := next()
	if !ok {
		return e, errShort
	}
	if data != "" {
		e.Data = []byte(data)
	}
	nm, ok := count()
	if !ok {
		return e, errShort
	}
	if nm > 0 {
		e.Metadata = make(map[string]string, nm)
		for range nm {
			k, ok1 := next()
			v, ok2 := next()
			if !ok1 || !ok2 {
				return e, errShort
			}
			e.Metadata[k] = v
		}
	}
	return e, nil
}
