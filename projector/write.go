package projector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// setHoles publishes the lowest event file still to be rewritten.
func (p *Projector) setHoles() {
	h := uint64(0)
	if len(p.missing) > 0 {
		h = p.missing[0]
	}
	p.holes.Store(h)
	p.advance()
}

// advance wakes the callers of Wait.
func (p *Projector) advance() {
	p.mu.Lock()
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.mu.Unlock()
}

// project writes the event files and index entries of positions from..to,
// or, when asked to stop meanwhile, of from..n for some n < to; it returns
// the last position projected. A failed attempt leaves no index entry beyond
// from-1, so the retry appends each position once.
func (p *Projector) project(from, to uint64) (uint64, error) {
	clear(p.pending)
	rd := p.log.NewReader()
	for pos := from; pos <= to; pos++ {
		if (pos-from)%stopCheckEvery == stopCheckEvery-1 && p.stopped() {
			to = pos - 1
			break
		}
		e, err := rd.Event(pos)
		if err != nil {
			return 0, err
		}
		if p.choice.EventFiles && pos >= p.eventsFrom {
			if err := p.writeEvent(e); err != nil {
				return 0, err
			}
		}
		if p.choice.TypeIndex {
			p.pending[fileKey{storedir.TypesDir, e.Type}] = append(p.pending[fileKey{storedir.TypesDir, e.Type}], pos)
		}
		if p.choice.TagIndex {
			for _, t := range e.Tags {
				p.pending[fileKey{storedir.TagsDir, t}] = append(p.pending[fileKey{storedir.TagsDir, t}], pos)
			}
		}
	}
	tagEntries := 0
	for k, ps := range p.pending {
		if err := p.appendIndex(k, ps); err != nil {
			return 0, errors.Join(err, p.rollBackIndex(from-1))
		}
		if k.kind == storedir.TagsDir {
			tagEntries += len(ps)
		}
	}
	p.tagEntries += tagEntries
	return to, nil
}

// rollBackIndex trims the index files of the failed batch to upTo.
func (p *Projector) rollBackIndex(upTo uint64) error {
	var errs []error
	for k := range p.pending {
		p.files.drop(k)
		errs = append(errs, indexer.TrimFile(p.fs, p.indexPath(k), upTo))
	}
	return errors.Join(errs...)
}

func (p *Projector) indexPath(k fileKey) string {
	return filepath.Join(p.dir, storedir.IndexDir, k.kind, storedir.IndexFileName(k.name))
}

// rewrite writes the event files of the given positions again. A checkpoint
// already vouches for them, so each must be durable before its name is back
// in events/: a power cut must not leave a name there with no content (the
// next Open lists names only). They are written to tmp/, made durable by one
// sync of the file system, and renamed into place.
func (p *Projector) rewrite(positions []uint64) error {
	rd := p.log.NewReader()
	tmps := make([]string, len(positions))
	for i, pos := range positions {
		e, err := rd.Event(pos)
		if err != nil {
			return err
		}
		p.buf = storedir.AppendEventFile(p.buf[:0], e)
		tmps[i] = filepath.Join(p.dir, storedir.TmpDir, "rewrite-"+storedir.EventFileName(pos))
		if err := vfs.WriteFile(p.fs, tmps[i], p.buf, 0o640); err != nil {
			return fmt.Errorf("projector: rewrite event %d: %w", pos, err)
		}
	}
	if err := p.fs.SyncFS(p.dir); err != nil {
		return fmt.Errorf("projector: syncfs %s: %w", p.dir, err)
	}
	for i, pos := range positions {
		if err := p.fs.Rename(tmps[i], storedir.EventPath(p.dir, pos)); err != nil {
			return fmt.Errorf("projector: rewrite event %d: %w", pos, err)
		}
	}
	return nil
}

// writeEvent writes e's event file.
func (p *Projector) writeEvent(e dcb.SequencedEvent) error {
	var err error
	p.buf, err = WriteEventFile(p.fs, p.dir, e, p.buf)
	return err
}

// WriteEventFile writes the event file of e in the store directory dir: in
// tmp/, then renamed into events/, so that a watcher never sees it partial.
// It is not fsync'd (see the checkpoint). buf is scratch space, returned for
// reuse. One writer at a time per directory. Every change goes through fs.
func WriteEventFile(fs vfs.FS, dir string, e dcb.SequencedEvent, buf []byte) ([]byte, error) {
	buf = storedir.AppendEventFile(buf[:0], e)
	tmp := filepath.Join(dir, storedir.TmpDir, "event")
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return buf, fmt.Errorf("projector: %w", err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return buf, fmt.Errorf("projector: write event %d: %w", e.Position, err)
	}
	if err := fs.Rename(tmp, storedir.EventPath(dir, e.Position)); err != nil {
		return buf, fmt.Errorf("projector: %w", err)
	}
	return buf, nil
}

func (p *Projector) appendIndex(k fileKey, positions []uint64) error {
	f, empty, err := p.files.get(p.dir, k)
	if err != nil {
		return err
	}
	if p.buf, err = indexer.AppendEntries(f, k.name, empty, positions, p.buf); err != nil {
		p.files.drop(k)
		return fmt.Errorf("projector: append to index of %q: %w", k.name, err)
	}
	return nil
}

func (p *Projector) checkpoint() error {
	pos := p.projected.Load()
	if err := WriteCheckpoint(p.fs, p.dir, storedir.Checkpoint{Position: pos, TagEntries: p.tagEntries, IDs: p.idx.IDs() > 0}); err != nil {
		return err
	}
	p.checkpointed.Store(pos)
	p.dirty = false
	return nil
}
