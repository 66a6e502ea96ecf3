package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prefixes are the words that start an error message: "possum COMMAND"
// and the package names.
var prefixes = regexp.MustCompile(`^(possum( [a-z-]+)?|store|recovery|wal|projector|indexer|client|server|platform|dcb|decision)$`)

// doubled returns the prefix a message line says twice, "" when none: in
// "possum serve: possum: store directory in use", "possum".
func doubled(line string) string {
	seen := map[string]bool{}
	for _, part := range strings.Split(line, ": ") {
		if !prefixes.MatchString(part) {
			continue
		}
		family := strings.Fields(part)[0] // "possum serve" and "possum" are one
		if seen[family] {
			return family
		}
		seen[family] = true
	}
	return ""
}

func TestDoubled(t *testing.T) {
	for line, want := range map[string]string{
		"possum serve: possum: store directory in use":                           "possum",
		"possum read: store: read position 2: wal: corrupt: checksum mismatch":   "",
		"store: follow d: wal: corrupt: wal: the log changed under its follower": "wal",
		"store: wait for projection of 3: store: closed":                         "store",
	} {
		assert.Equal(t, want, doubled(line), line)
	}
}

// No message possum prints says a prefix twice: the outer layer adds none
// the inner has. Each case is a way a command fails.
func TestNoDoubledPrefix(t *testing.T) {
	base := t.TempDir()
	held := filepath.Join(base, "held")
	holdOpen(t, held)
	corrupt := filepath.Join(base, "corrupt")
	buildStore(t, corrupt, 40)
	segs := segments(t, corrupt)
	flipByte(t, segs[0].path, (segs[0].offs[1]+segs[0].ends[1])/2) // mid-log: a checksum mismatch
	// No event file repairs the damage: recover refuses to lose it.
	require.NoError(t, os.RemoveAll(filepath.Join(corrupt, "events")))
	format := filepath.Join(base, "format")
	require.NoError(t, os.MkdirAll(filepath.Join(format, "wal"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(format, "FORMAT"), []byte("possum 9\n"), 0o640))
	notStore := t.TempDir()
	cursor, err := store.OpenCursor(filepath.Join(base, "taken.cursor"))
	require.NoError(t, err)
	require.NoError(t, cursor.Lock())
	t.Cleanup(func() { _ = cursor.Close() })

	for _, args := range [][]string{
		{"serve", held},
		{"recover", held},
		{"demo", held},
		{"read", corrupt},
		{"tail", corrupt},
		{"stats", corrupt},
		{"verify", corrupt},
		{"recover", corrupt},
		{"read", format},
		{"append", format, "--type", "A"},
		{"verify", notStore},
		{"recover", notStore},
		{"read", filepath.Join(base, "nothing")},
		{"tail", held, "--cursor", cursor.Path()},
		{"tail", held, "--cursor", filepath.Join(corrupt, "wal")},
		{"read", held, "--from", "x"},
	} {
		code, out, errOut := runCmd(args...)
		assert.NotZero(t, code, "%q", args)
		require.NotEmpty(t, errOut+out, "%q", args)
		for line := range strings.Lines(errOut + out) {
			assert.Empty(t, doubled(strings.TrimSpace(line)), "%q: %s", args, line)
		}
	}
}

// flipByte flips the bits of one byte of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[off] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o640))
}
