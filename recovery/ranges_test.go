package recovery

import (
	"testing"

	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
)

// TestSubtractRanges: what a holds that b does not, range by range.
func TestSubtractRanges(t *testing.T) {
	r := func(from, to uint64) storedir.Range { return storedir.Range{From: from, To: to} }
	for _, c := range []struct {
		a, b, want []storedir.Range
	}{
		{nil, []storedir.Range{r(1, 5)}, nil},
		{[]storedir.Range{r(1, 5)}, nil, []storedir.Range{r(1, 5)}},
		{[]storedir.Range{r(1, 5)}, []storedir.Range{r(1, 5)}, nil},
		{[]storedir.Range{r(1, 10)}, []storedir.Range{r(3, 4), r(7, 7)}, []storedir.Range{r(1, 2), r(5, 6), r(8, 10)}},
		{[]storedir.Range{r(1, 3), r(8, 9)}, []storedir.Range{r(2, 8)}, []storedir.Range{r(1, 1), r(9, 9)}},
		{[]storedir.Range{r(5, 6)}, []storedir.Range{r(1, 2), r(9, 12)}, []storedir.Range{r(5, 6)}},
		{[]storedir.Range{r(5, 6), r(10, 12)}, []storedir.Range{r(1, 5), r(12, 20)}, []storedir.Range{r(6, 6), r(10, 11)}},
	} {
		assert.Equal(t, c.want, subtractRanges(c.a, c.b), "%v - %v", c.a, c.b)
	}
}
