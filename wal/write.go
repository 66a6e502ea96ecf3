package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
)

// Append writes records as consecutive WAL entries with one write and, unless
// NoSync, one fsync, and returns once they are durable: Write, then Sync.
// Their positions must continue the log gap-free. Any failure poisons the
// log: this and every later Append return an error wrapping ErrPoisoned and
// the cause.
func (l *Log) Append(recs []Record) error {
	if err := l.Write(recs); err != nil {
		return err
	}
	_, err := l.Sync()
	return err
}

// Write writes records as consecutive WAL entries with one write, without
// waiting for an fsync: they become durable, readable and counted by
// LastPosition with the next Sync. Their positions must continue the written
// log gap-free. A record that cannot be encoded fails Write with nothing
// written; any other failure poisons the log: this and every later Write and
// Sync return an error wrapping ErrPoisoned and the cause, and the records
// written before it and not yet synced are never made visible.
func (l *Log) Write(recs []Record) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.follower != nil {
		return errors.New("wal: a follower does not append")
	}
	if l.poisoned != nil {
		return l.poisoned
	}
	next := l.written + 1
	l.scratch.Clear()
	index := l.entries + 1
	frames := make([]int, 0, len(recs)) // frame end offsets in l.buf
	l.buf = l.buf[:0]
	for i, r := range recs {
		if r.FirstPosition != next || len(r.Events) == 0 {
			return fmt.Errorf("wal: record %d starts at position %d with %d events, expected position %d", i, r.FirstPosition, len(r.Events), next)
		}
		var err error
		if l.buf, err = AppendFrame(l.buf, r); err != nil {
			return err // nothing written: the log stays usable
		}
		frames = append(frames, len(l.buf))
		next += uint64(len(r.Events))
	}
	if len(recs) == 0 {
		return nil
	}
	start := 0
	for i, end := range frames {
		l.scratch.Write(index+uint64(i), l.buf[start:end])
		start = end
	}
	if err := l.tw.WriteBatch(&l.scratch); err != nil {
		return l.poisonLocked(err)
	}
	// Mirror tidwall's segment rolling to learn where each frame landed.
	// tidwall fsyncs every segment it rolls away from (so what was written
	// there before, pending or not, is durable); the new segment's directory
	// entry is Sync's job.
	seg := uint32(len(l.segs) - 1)
	var newSegs []*segment
	roll := func(first uint64) {
		newSegs = append(newSegs, &segment{first: first, path: filepath.Join(l.dir, segmentName(first))})
		seg++
		l.tailSize = 0
	}
	if l.tailSize > int64(l.segmentSize) {
		roll(index)
	}
	start = 0
	for i, end := range frames {
		size := end - start
		prefix := int64(uvarintLen(uint64(size)))
		l.pending = append(l.pending, recordLoc{
			firstPos: recs[i].FirstPosition,
			count:    uint32(len(recs[i].Events)),
			seg:      seg,
			off:      uint32(l.tailSize + prefix),
			size:     uint32(size),
		})
		l.tailSize += prefix + int64(size)
		if l.tailSize >= int64(l.segmentSize) {
			roll(index + uint64(i) + 1)
		}
		start = end
	}
	if len(newSegs) > 0 {
		// Readers find records through locs, so a segment no durable
		// record lives in yet is harmless to them.
		l.mu.Lock()
		l.segs = append(l.segs, newSegs...)
		l.mu.Unlock()
		l.newSegs = true
	}
	l.written = next - 1
	l.entries += uint64(len(recs))
	return nil
}

// Sync makes every record written before it durable (unless NoSync) and
// visible: readable, and counted by LastPosition, which it returns. One fsync
// of the tail segment covers every record written since the last Sync; Write
// may go on meanwhile, and what it writes waits for the next Sync. With
// nothing written since the last Sync it returns at once. A failure poisons
// the log: the records this Sync covered are never made visible, and this
// and every later Write and Sync return an error wrapping ErrPoisoned and the
// cause (an fsync is never retried).
func (l *Log) Sync() (uint64, error) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.wmu.Lock()
	if l.closed {
		l.wmu.Unlock()
		return 0, ErrClosed
	}
	if l.poisoned != nil {
		l.wmu.Unlock()
		return 0, l.poisoned
	}
	pending, newSegs := l.pending, l.newSegs
	l.pending, l.newSegs = nil, false
	tail := l.segs[len(l.segs)-1]
	l.wmu.Unlock()
	if len(pending) == 0 {
		return l.LastPosition(), nil
	}
	if !l.noSync {
		// tidwall synced every segment it rolled away from; the tail, as it
		// was when the pending records were taken, is ours. A record
		// written after that is not covered, nor claimed.
		f, err := tail.file()
		if err == nil {
			err = l.syncFile(f)
		}
		if err != nil {
			return 0, l.poison(fmt.Errorf("wal: fsync %s: %w", filepath.Base(tail.path), err))
		}
	}
	if newSegs {
		// tidwall creates segments without syncing the directory: without
		// this, a power loss could take an acknowledged segment with it.
		if err := l.syncDir(l.dir); err != nil {
			return 0, l.poison(err)
		}
	}
	l.mu.Lock()
	l.locs = append(l.locs, pending...)
	segs := l.segs
	last := l.locs[len(l.locs)-1].lastPos()
	l.mu.Unlock()
	if l.offsets != nil {
		if err := l.offsets.append(pending, segs); err != nil {
			// The records are durable; only the derived offsets file failed.
			// Stop maintaining it: the next Open trusts it as far as its
			// entries check out and scans the rest.
			l.offsetsErr = err
			l.offsets.close()
			l.offsets = nil
		}
	}
	return last, nil
}

// poison poisons the log with err, unless it already is; it returns the
// poisoning error.
func (l *Log) poison(err error) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.poisonLocked(err)
}

// poisonLocked is poison with wmu held.
func (l *Log) poisonLocked(err error) error {
	if l.poisoned == nil {
		l.poisoned = fmt.Errorf("%w: %w", ErrPoisoned, err)
	}
	l.pending = nil
	return l.poisoned
}

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}
