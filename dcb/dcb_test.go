package dcb_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
)

func TestQueryMatches(t *testing.T) {
	e := dcb.Event{Type: "Subscribed", Tags: []string{"course:c1", "student:s1"}}
	for _, tc := range []struct {
		name string
		q    dcb.Query
		want bool
	}{
		{"all", dcb.All(), true},
		{"type", dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Subscribed"}}}}, true},
		{"types are OR'd", dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Other", "Subscribed"}}}}, true},
		{"type is case-sensitive", dcb.Query{Items: []dcb.QueryItem{{Types: []string{"subscribed"}}}}, false},
		{"tags are AND'd", dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c1", "student:s1"}}}}, true},
		{"a missing tag fails the item", dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c1", "student:s2"}}}}, false},
		{"no prefix matching", dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c"}}}}, false},
		{"type AND tags", dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Other"}, Tags: []string{"course:c1"}}}}, false},
		{"items are OR'd", dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Other"}}, {Tags: []string{"student:s1"}}}}, true},
	} {
		assert.Equal(t, tc.want, tc.q.Matches(e), tc.name)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    dcb.Event
		ok   bool
	}{
		{"minimal", dcb.Event{Type: "T"}, true},
		{"empty type", dcb.Event{}, false},
		{"empty tag", dcb.Event{Type: "T", Tags: []string{""}}, false},
		{"invalid UTF-8 tag", dcb.Event{Type: "T", Tags: []string{"\xff"}}, false},
		{"invalid JSON", dcb.Event{Type: "T", Data: json.RawMessage(`{`)}, false},
		{"awkward tags are fine", dcb.Event{Type: "T", Tags: []string{"a/b", "..", "🦘", `a\b`, " "}}, true},
		{"invalid UTF-8 metadata", dcb.Event{Type: "T", Metadata: map[string]string{"k": "\xff"}}, false},
		// json.Valid accepts these; Python's json.load and others do not.
		{"invalid UTF-8 in a data string", dcb.Event{Type: "T", Data: json.RawMessage("\"\xff\xfe\"")}, false},
		{"invalid UTF-8 in a data key", dcb.Event{Type: "T", Data: json.RawMessage("{\"\xc3\":1}")}, false},
		{"UTF-8 data is fine", dcb.Event{Type: "T", Data: json.RawMessage(`"é🦘"`)}, true},
	} {
		err := tc.e.Validate()
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, dcb.ErrInvalidEvent, tc.name)
		}
	}
	assert.ErrorIs(t, dcb.ValidateBatch(nil), dcb.ErrInvalidEvent)
	assert.ErrorIs(t, dcb.Query{Items: []dcb.QueryItem{{}}}.Validate(), dcb.ErrInvalidQuery)
	assert.ErrorIs(t, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{""}}}}.Validate(), dcb.ErrInvalidQuery)
	assert.NoError(t, dcb.All().Validate())
}

func TestNormalized(t *testing.T) {
	e := dcb.Event{Type: "T", Tags: []string{"b", "a", "b", "a"}, Data: json.RawMessage(" {\"x\": 1}\n"), Metadata: map[string]string{}}.Normalized()
	assert.Equal(t, []string{"b", "a"}, e.Tags, "duplicates dropped, first occurrences kept in order")
	assert.Equal(t, json.RawMessage(`{"x": 1}`), e.Data, "surrounding whitespace trimmed, inner bytes kept")
	assert.Nil(t, e.Metadata)
	assert.Nil(t, dcb.Event{Type: "T", Data: json.RawMessage(" null ")}.Normalized().Data, "JSON null is no data")
}

func TestNormalizedDropsDuplicatesOfManyTags(t *testing.T) {
	// Past the pairwise comparison's range, a set does the work.
	tags := make([]string, 0, 3000)
	want := make([]string, 0, 1000)
	for i := range 1000 {
		want = append(want, fmt.Sprintf("t:%d", i))
	}
	tags = append(append(append(tags, want...), want[500:]...), want...)
	got := dcb.Event{Type: "T", Tags: tags}.Normalized().Tags
	assert.Equal(t, want, got)

	distinct := slices.Clone(want)
	got = dcb.Event{Type: "T", Tags: distinct}.Normalized().Tags
	assert.Equal(t, want, got)
	assert.Same(t, &distinct[0], &got[0], "no duplicate: the slice is kept, not copied")

	assert.Equal(t, []string{"a", "b"}, dcb.Event{Type: "T", Tags: []string{"a", "b", "a"}}.Normalized().Tags)
}

// BenchmarkNormalized100kTags: dropping duplicates is linear (it was
// quadratic: 12 s for 100k distinct tags).
func BenchmarkNormalized100kTags(b *testing.B) {
	tags := make([]string, 100_000)
	for i := range tags {
		tags[i] = fmt.Sprintf("tag:%d", i)
	}
	e := dcb.Event{Type: "T", Tags: tags}
	for b.Loop() {
		if len(e.Normalized().Tags) != len(tags) {
			b.Fatal("tags lost")
		}
	}
}
