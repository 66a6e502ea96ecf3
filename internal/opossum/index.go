package opossum

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/possumstore/possum/dcb"
)

// Opossum's index files: per event type and per tag, a JSON file listing
// the positions of its events, {"Positions": [1, 4, ...]}, sorted. Their
// directories, matched without regard to case: index/eventtype and
// index/tag in the seed, Indices/EventType and Indices/Tags from 5e63bd2.
// A file is named for its type, or for its tag as key_value (a null value
// as "null"), after Opossum's GetSafeFileName: the name split at every
// character the file system forbids in a name, empty parts dropped, the
// rest joined with '_'. So a name is not always the type or tag it stands
// for; Lost below says when it is taken as one.
var (
	indexDirs = []string{"indices", "index"}
	typeDirs  = []string{"eventtype"}
	tagDirs   = []string{"tags", "tag"}
)

// Lost says what Opossum's index files still know of the positions of a
// snapshot that have no event file: the type and tags of the event that
// was there, where the index files say them for certain.
type Lost struct {
	known map[uint64]dcb.Event
	// Unreadable names an index file that could not be read, when one
	// could not: then no position is known (the file might have listed it).
	Unreadable string
}

// Marker returns the lost position's marker of position pos (see
// dcb.SequencedEvent.Lost): the type and tags of the event that was there
// when the index files say them for certain, else Type "" and no tags, an
// unknown marker, which matches every query.
func (l *Lost) Marker(pos uint64) dcb.Event {
	if l == nil {
		return dcb.Event{}
	}
	return l.known[pos]
}

// Known counts the positions whose marker has a type.
func (l *Lost) Known() int {
	if l == nil {
		return 0
	}
	return len(l.known)
}

// indexFile is an index file that lists positions without an event file.
type indexFile struct {
	path, name string // name: the file's name without ".json"
	tag        bool
	// neighbour is a position the file lists that has an event file, 0 for
	// none: the event there has the type or a tag the file stands for.
	neighbour uint64
}

// Lost reads Opossum's index files for the positions of the snapshot that
// have no event file. A position's marker is known (its type and tags)
// when all of these hold, else unknown:
//   - the ledger, read without a problem, reaches it: Opossum moves the
//     ledger only after it has written an append's event files and then its
//     index entries (type first, then each tag), so the entries of a
//     position the ledger reaches were all written;
//   - exactly one type file lists it;
//   - every file that lists it gives its type or tag for certain: another
//     position it lists has an event file whose type, or one of whose tags,
//     has the file's name (the file is that type's or tag's); or, failing
//     that, the name cannot be another's: a type file's name without '_', a
//     tag file's name with exactly one '_' (key_value) and a value other
//     than "null" (which a null value also gives).
//
// An index file that cannot be read (Opossum treats one that is not JSON as
// empty) makes every marker unknown, with Unreadable saying which.
func (s *Snapshot) Lost() (*Lost, error) {
	l := &Lost{known: map[uint64]dcb.Event{}}
	if len(s.gaps) == 0 || s.LedgerProblem != "" {
		return l, nil
	}
	lists := map[uint64][]*indexFile{} // per lost position, the files that list it
	for _, dir := range subDirs(s.Dir, indexDirs) {
		for _, sub := range []struct {
			names []string
			tag   bool
		}{{typeDirs, false}, {tagDirs, true}} {
			for _, d := range subDirs(dir, sub.names) {
				ents, err := os.ReadDir(d)
				if err != nil {
					return nil, fmt.Errorf("opossum: %w", err)
				}
				for _, e := range ents {
					name, ok := strings.CutSuffix(e.Name(), ".json")
					if !ok || !e.Type().IsRegular() {
						continue // a .tmp.GUID an interrupted write left, or not Opossum's
					}
					f := &indexFile{path: filepath.Join(d, e.Name()), name: name, tag: sub.tag}
					if err := s.readIndexFile(f, lists); err != nil {
						l.Unreadable = f.path + ": " + err.Error()
						return l, nil
					}
				}
			}
		}
	}
	names := map[*indexFile]string{}
	for pos, files := range lists {
		if pos > s.Ledger {
			continue
		}
		var m dcb.Event
		ok := true
		for _, f := range files {
			name, done := names[f]
			if !done {
				name = s.indexName(f)
				names[f] = name
			}
			switch {
			case name == "":
				ok = false
			case !f.tag && m.Type != "":
				ok = false // listed under two types
			case !f.tag:
				m.Type = name
			case !slices.Contains(m.Tags, name):
				m.Tags = append(m.Tags, name)
			}
		}
		if ok && m.Type != "" {
			sort.Strings(m.Tags)
			l.known[pos] = m
		}
	}
	return l, nil
}

// readIndexFile reads the index file f and adds it to lists under each
// lost position it lists.
func (s *Snapshot) readIndexFile(f *indexFile, lists map[uint64][]*indexFile) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	var idx struct{ Positions []int64 }
	if err := json.Unmarshal(b, &idx); err != nil {
		return jsonProblem(err)
	}
	for _, p := range idx.Positions {
		switch pos := uint64(p); {
		case p <= 0:
			return fmt.Errorf("lists position %d", p)
		case s.isGap(pos):
			if n := len(lists[pos]); n == 0 || lists[pos][n-1] != f {
				lists[pos] = append(lists[pos], f)
			}
		case f.neighbour == 0 && pos <= s.LastFile:
			f.neighbour = pos
		}
	}
	return nil
}

// isGap reports whether pos is a position of the snapshot without an event
// file.
func (s *Snapshot) isGap(pos uint64) bool {
	i := sort.Search(len(s.gaps), func(i int) bool { return s.gaps[i][1] >= pos })
	return i < len(s.gaps) && s.gaps[i][0] <= pos
}

// indexName is the type or possum tag the index file f stands for, "" when
// that is not certain.
func (s *Snapshot) indexName(f *indexFile) string {
	if f.neighbour > 0 {
		if it, err := s.read(f.neighbour); err == nil && it.Problem == nil {
			if name := nameOf(f, it.Event); name != "" {
				return name
			}
		}
	}
	if !f.tag {
		if strings.Contains(f.name, "_") {
			return ""
		}
		return f.name
	}
	key, value, ok := strings.Cut(f.name, "_")
	if !ok || key == "" || strings.Contains(value, "_") || value == "null" {
		return ""
	}
	return Tag(key, value)
}

// nameOf is e's type, or the one tag of e, whose index file is f's; ""
// when none is, or two tags are.
func nameOf(f *indexFile, e dcb.SequencedEvent) string {
	if !f.tag {
		if safeNameIs(e.Type, f.name) {
			return e.Type
		}
		return ""
	}
	found := ""
	for _, t := range e.Tags {
		key, value, hasValue, ok := SplitTag(t)
		if !ok {
			continue
		}
		if !hasValue {
			value = "null" // as Opossum names the file of a null value
		}
		for _, forbidden := range forbiddenInNames {
			if safeName(key, forbidden)+"_"+safeName(value, forbidden) != f.name {
				continue
			}
			if found != "" && found != t {
				return ""
			}
			found = t
		}
	}
	return found
}

// forbiddenInNames are the characters .NET's Path.GetInvalidFileNameChars
// returns on Linux and macOS, and on Windows: an Opossum store may have
// been written on either.
var forbiddenInNames = []string{
	"\x00/",
	"\"<>|\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f:*?\\/",
}

// safeNameIs reports whether Opossum names the index file of s name, on
// some system.
func safeNameIs(s, name string) bool {
	for _, forbidden := range forbiddenInNames {
		if safeName(s, forbidden) == name {
			return true
		}
	}
	return false
}

// safeName is Opossum's GetSafeFileName of s: split at every forbidden
// character, empty parts dropped, joined with '_'.
func safeName(s, forbidden string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(forbidden, r) }), "_")
}

// subDirs returns the directories in dir whose names are one of names, in
// any case.
func subDirs(dir string, names []string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // no such directory: nothing indexed there
	}
	var found []string
	for _, e := range ents {
		if e.IsDir() && slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(e.Name(), n) }) {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	return found
}
