package opossum

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A ':' or '\' in a key is escaped, so that the possum tag splits back
// into the Opossum tag it came from, and no two Opossum tags share one.
func TestTagEscaping(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		null       bool
		tag        string
	}{
		{key: "courseId", value: "42", tag: "courseId:42"},
		{key: "a:b", value: "c", tag: `a\:b:c`},
		{key: "a", value: "b:c", tag: `a:b:c`},
		{key: `C:\x`, value: `y\`, tag: `C\:\\x:y\`},
		{key: "k", value: "", tag: "k:"},
		{key: "k", null: true, tag: "k"},
		{key: "", value: "v", tag: ":v"},
		{key: "ключ", value: "🦦", tag: "ключ:🦦"},
	} {
		tag := Tag(tc.key, tc.value)
		if tc.null {
			tag = KeyTag(tc.key)
		}
		assert.Equal(t, tc.tag, tag)
		k, v, hasValue, ok := SplitTag(tag)
		assert.True(t, ok, tag)
		assert.Equal(t, tc.key, k, tag)
		assert.Equal(t, tc.value, v, tag)
		assert.Equal(t, !tc.null, hasValue, tag)
	}
	for _, bad := range []string{`a\`, `a\b:c`, "\xff:v"} {
		_, _, _, ok := SplitTag(bad)
		assert.False(t, ok, bad)
	}
}

// Random keys and values over an alphabet heavy in ':' and '\': SplitTag
// inverts Tag and KeyTag, and different Opossum tags give different tags.
func TestTagEscapingRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{":", `\`, "a", "b", "é", " "}
	word := func() string {
		var b strings.Builder
		for range rng.IntN(5) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	type pair struct {
		key, value string
		null       bool
	}
	seen := map[string]pair{}
	for range 20000 {
		p := pair{key: word(), value: word(), null: rng.IntN(4) == 0}
		if p.null {
			p.value = ""
		}
		tag := Tag(p.key, p.value)
		if p.null {
			tag = KeyTag(p.key)
		}
		if prev, ok := seen[tag]; ok {
			require.Equal(t, prev, p, "two tags give %q", tag)
		}
		seen[tag] = p
		k, v, hasValue, ok := SplitTag(tag)
		require.True(t, ok, tag)
		require.Equal(t, p, pair{k, v, !hasValue}, tag)
	}
}

// Arbitrary bytes as an event file never panic; what decodes is a valid
// event at the file's position.
func FuzzDecodeFile(f *testing.F) {
	for _, dir := range []string{"current/events", "minified/events", "damage/torn/events", "damage/duplicate-tags/events"} {
		ents, err := os.ReadDir(filepath.Join("testdata", dir))
		require.NoError(f, err)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("testdata", dir, e.Name()))
			require.NoError(f, err)
			pos, _ := filePosition(e.Name())
			f.Add(b, pos)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, pos uint64) {
		se, err := decodeFile(b, pos)
		if err != nil {
			return
		}
		require.Equal(t, pos, se.Position)
		require.NoError(t, se.Event.Validate())
		require.False(t, se.Timestamp.IsZero())
		require.True(t, utf8.Valid(se.Data))
		for _, tag := range se.Tags {
			_, _, _, ok := SplitTag(tag)
			require.True(t, ok, tag)
		}
	})
}

// Only the names Opossum writes are event files.
func TestFilePosition(t *testing.T) {
	for name, want := range map[string]uint64{
		"0000000001.json":          1,
		"9999999999.json":          9999999999,
		"10000000000.json":         10000000000,
		"0000000000.json":          0,
		"000000001.json":           0,
		"00000000001.json":         0,
		"0000000001.JSON":          0,
		"0000000001.json.tmp.5d1c": 0,
		"+000000001.json":          0,
	} {
		got, ok := filePosition(name)
		assert.Equal(t, want, got, name)
		assert.Equal(t, want != 0, ok, name)
	}
}

// A timestamp Opossum can write but possum cannot keep (possum's are
// nanoseconds since 1970 in 64 bits: the years 1678 to 2262) makes the
// file one the import refuses, saying why.
func TestDecodeTimestampRange(t *testing.T) {
	file := func(ts string) []byte {
		return []byte(`{"event":{"eventType":"T","event":{"$type":"X, X"},"tags":[]},"position":1,"metadata":{"timestamp":"` + ts + `"}}`)
	}
	se, err := decodeFile(file("2262-04-11T23:47:16.854775807+00:00"), 1)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<63-1), se.Timestamp.UnixNano())
	_, err = decodeFile(file("9999-12-31T23:59:59.9999999+00:00"), 1)
	assert.ErrorContains(t, err, "timestamp 9999-12-31T23:59:59.9999999Z outside the years 1678 to 2262")
	_, err = decodeFile(file("0001-01-01T00:00:00+00:00"), 1)
	assert.ErrorContains(t, err, "is the zero time")
	_, err = decodeFile(file("2026-03-01 10:00:00"), 1)
	assert.ErrorContains(t, err, "is not an ISO 8601 date and time with an offset")
}
