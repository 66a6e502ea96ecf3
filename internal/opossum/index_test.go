package opossum

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/opossum/opossumtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixture damage/gaps-indexed lost positions 3 and 5 (gaps) and 8..9
// (a ledger ahead of the files); Opossum's index files still list 3 under
// its type and tag, 9 under its type, 8 under its type and a tag file whose
// name cannot be told apart (region_eu_west: region:eu_west or
// region_eu:west), and 5 nowhere (but in a temporary file an interrupted
// write left, which is not read). Known markers: 3 and 9.
func TestLostFromIndexFiles(t *testing.T) {
	s := scan(t, opossumtest.Copy(t, "damage/gaps-indexed"))
	l, err := s.Lost()
	require.NoError(t, err)
	assert.Empty(t, l.Unreadable)
	assert.Equal(t, dcb.Event{Type: "OrderPlaced", Tags: []string{"order:o3"}}, l.Marker(3))
	assert.Equal(t, dcb.Event{}, l.Marker(5), "listed by no index file")
	assert.Equal(t, dcb.Event{}, l.Marker(8), "a tag file whose name is not certain")
	assert.Equal(t, dcb.Event{Type: "OrderCancelled"}, l.Marker(9))
	assert.Equal(t, dcb.Event{}, l.Marker(4), "not lost")
	assert.Equal(t, 2, l.Known())

	// A store without gaps reads no index file.
	l, err = scan(t, opossumtest.Copy(t, "current")).Lost()
	require.NoError(t, err)
	assert.Zero(t, l.Known())
}

// indexFiles writes Opossum's index files into dir: per path under
// Indices, its positions.
func indexFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, "Indices", filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
}

// A name an index file's name does not give for certain is read from
// another position the file lists, whose event file still says it: a type
// or tag with '_', a key with ':' as a store written on Windows names it.
// Anything uncertain leaves the marker unknown: two types, an unreadable
// index file, a position past the ledger (its append may have crashed
// before it wrote every index entry), a name that cannot be told apart.
func TestLostNames(t *testing.T) {
	base := map[string]string{
		"EventType/Order_Placed.json":  `{"Positions": [1, 2, 3]}`,
		"Tags/shop_id_s_1.json":        `{"Positions": [1, 2, 3]}`,
		"Tags/course_id_c1.json":       `{"Positions": [2, 3]}`,
		"Tags/order_o2.json":           `{"Positions": [2]}`,
		"Tags/order_o2.json.tmp.0a1b2": `{"Positions": [`,
	}
	known := dcb.Event{Type: "Order_Placed", Tags: []string{`course\:id:c1`, "order:o2", "shop_id:s_1"}}
	for _, tc := range []struct {
		name       string
		extra      map[string]string
		ledger     string
		want       dcb.Event
		unreadable string
	}{
		{name: "known", want: known},
		{name: "two types", extra: map[string]string{"EventType/Other.json": `{"Positions": [2]}`}},
		{name: "unreadable", extra: map[string]string{"Tags/x_y.json": `{"Positions": [2,`}, unreadable: "x_y.json: not JSON"},
		{name: "past the ledger", ledger: `{"LastSequencePosition": 1, "EventCount": 1}`},
		{name: "uncertain name", extra: map[string]string{"Tags/a_b_c.json": `{"Positions": [2]}`}},
		{name: "null or \"null\"", extra: map[string]string{"Tags/draft_null.json": `{"Positions": [2]}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Shop")
			w, err := opossumtest.NewWriter(dir, true)
			require.NoError(t, err)
			var batch []opossumtest.Event
			for i := range 3 {
				batch = append(batch, opossumtest.Event{Type: "Order_Placed",
					Tags:      [][2]string{{"shop_id", "s_1"}, {"course:id", "c1"}, {"order", "o" + string(rune('1'+i))}},
					Payload:   `{"$type": "Shop.OrderPlaced, Shop"}`,
					Timestamp: time.Date(2026, 3, 1, 0, 0, i, 0, time.UTC)})
			}
			_, err = w.Append(batch)
			require.NoError(t, err)
			require.NoError(t, os.Remove(filepath.Join(dir, "events", "0000000002.json")))
			indexFiles(t, dir, base)
			indexFiles(t, dir, tc.extra)
			if tc.ledger != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, ".ledger"), []byte(tc.ledger), 0o644))
			}
			s := scan(t, dir)
			l, err := s.Lost()
			require.NoError(t, err)
			assert.Equal(t, tc.want, l.Marker(2))
			if tc.unreadable == "" {
				assert.Empty(t, l.Unreadable)
			} else {
				assert.Contains(t, l.Unreadable, tc.unreadable)
			}
		})
	}
}
