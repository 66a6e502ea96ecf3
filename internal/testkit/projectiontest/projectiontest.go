// Package projectiontest checks a store's projection against its events, for
// the tests of several packages. It is an oracle written apart from the
// recovery package's verify, so that each checks the other.
//
// It is internal/testkit: tests only.
package projectiontest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/require"
)

// RequireMatches asserts that the projection in the store
// directory dir is exactly evs, the events 1..Head as Read returns them:
// one event file per event, byte for byte EncodeEvent of the event and
// decoding back to it, nothing else in events/; one index file per type and
// per tag, named FileName of its header's name, listing exactly that type's
// or tag's positions in order, nothing else in index/types/ and index/tags/.
func RequireMatches(t testing.TB, dir string, evs []dcb.SequencedEvent) {
	t.Helper()
	RequireMatchesChoice(t, dir, evs, projector.Everything)
}

// RequireMatchesChoice is RequireMatches for a store that materializes the
// files of choice: those of the other kinds must not exist at all.
func RequireMatchesChoice(t testing.TB, dir string, evs []dcb.SequencedEvent, choice projector.Choice) {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	want := make(map[string]bool, len(evs))
	types, tags := map[string][]uint64{}, map[string][]uint64{}
	for i, e := range evs {
		require.Equal(t, uint64(i+1), e.Position, "the checker needs every event 1..Head")
		want[storedir.EventFileName(e.Position)] = true
		types[e.Type] = append(types[e.Type], e.Position)
		for _, tag := range e.Tags {
			tags[tag] = append(tags[tag], e.Position)
		}
	}

	absent := func(rel string) {
		if _, err := os.Stat(filepath.Join(dir, rel)); !errors.Is(err, os.ErrNotExist) {
			bad("%s: exists (%v), though the projection %q leaves it out", rel, err, choice)
		}
	}
	if !choice.EventFiles {
		absent(storedir.EventsDir)
		evs = nil // no event file to check
	}
	ents, err := os.ReadDir(filepath.Join(dir, storedir.EventsDir))
	require.True(t, err == nil || !choice.EventFiles, "%v", err)
	for _, ent := range ents {
		if !want[ent.Name()] {
			bad("events/%s: unexpected file", ent.Name())
		}
	}
	var enc []byte
	for _, e := range evs {
		b, err := os.ReadFile(storedir.EventPath(dir, e.Position))
		if err != nil {
			bad("event %d: %v", e.Position, err)
			continue
		}
		enc = storedir.AppendEventFile(enc[:0], e)
		if !bytes.Equal(b, enc) {
			bad("event %d: file holds %q, the WAL's event encodes as %q", e.Position, b, enc)
			continue
		}
		got, err := storedir.DecodeEvent(b)
		if err != nil {
			bad("event %d: %v", e.Position, err)
		} else if !reflect.DeepEqual(got, e) {
			bad("event %d: file decodes as %#v, Read returns %#v", e.Position, got, e)
		}
	}

	for kind, m := range map[string]map[string][]uint64{storedir.TypesDir: types, storedir.TagsDir: tags} {
		if kind == storedir.TypesDir && !choice.TypeIndex || kind == storedir.TagsDir && !choice.TagIndex {
			absent(filepath.Join(storedir.IndexDir, kind))
			continue
		}
		d := filepath.Join(dir, storedir.IndexDir, kind)
		ents, err := os.ReadDir(d)
		require.NoError(t, err)
		files := map[string]bool{}
		for _, ent := range ents {
			files[ent.Name()] = true
			path := filepath.Join(d, ent.Name())
			name, ps, valid, err := indexer.ReadFile(path)
			if err != nil {
				bad("%s/%s: %v", kind, ent.Name(), err)
				continue
			}
			if fn := storedir.IndexFileName(name); fn != ent.Name() {
				bad("%s/%s: header names %q, whose file is %s", kind, ent.Name(), name, fn)
			}
			if st, err := os.Stat(path); err == nil && st.Size() != valid {
				bad("%s/%s: %d bytes, of which %d valid", kind, ent.Name(), st.Size(), valid)
			}
			wantPs, ok := m[name]
			if !ok {
				bad("%s/%s: index file of %q, which no event has", kind, ent.Name(), name)
				continue
			}
			if !slices.Equal(ps, wantPs) {
				bad("%s/%s (%q): positions %v, want %v", kind, ent.Name(), name, ps, wantPs)
			}
		}
		for name := range m {
			if !files[storedir.IndexFileName(name)] {
				bad("%s: no index file for %q (%s)", kind, name, storedir.IndexFileName(name))
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		n := len(problems)
		t.Fatalf("the projection in %s differs from the WAL (%d problems):\n%s", dir, n, strings.Join(problems[:min(n, 20)], "\n"))
	}
}
