package conformance_test

import (
	"context"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/possumstore/possum/bench/conformance"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
)

// flawed wraps possum with one DCB mistake.
type flawed struct {
	workload.Store
	ignoreConditions bool
	ignoreBackwards  bool
}

func (f flawed) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if f.ignoreConditions {
		cond = nil
	}
	return f.Store.Append(ctx, events, cond)
}

func (f flawed) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	if f.ignoreBackwards {
		o.Backwards = false
	}
	return f.Store.Read(ctx, q, o)
}

// TestCatchesFlawedStores: the check is only worth running if it fails a
// store that gets DCB wrong, naming what it got wrong.
func TestCatchesFlawedStores(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flaw       flawed
		wantFailed []string
	}{
		{"conditions ignored", flawed{ignoreConditions: true}, []string{
			"an item with neither types nor tags is rejected",
			"a condition counts only events after After",
			"a condition on All fails when any event follows After",
			"a batch is never checked against itself",
			"a failed append writes nothing and consumes no position",
			"events survive a reopen and positions continue",
			"of 20 appends racing on one condition exactly one wins",
		}},
		{"backwards ignored", flawed{ignoreBackwards: true}, []string{
			"items are OR'd, each event once, in position order",
			"read options: From, Limit, Backwards",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func(dir string) (workload.Store, error) {
				s, err := store.Open(dir, &store.Options{NoSync: true})
				if err != nil {
					return nil, err
				}
				f := tc.flaw
				f.Store = s
				return f, nil
			}
			err := conformance.Run(context.Background(), open, t.TempDir())
			if err == nil {
				t.Fatal("a flawed store passed the conformance check")
			}
			var failed []string
			for _, c := range conformance.Checks() {
				if strings.Contains(err.Error(), c.Name+":") {
					failed = append(failed, c.Name)
				}
			}
			if !slices.Equal(failed, tc.wantFailed) {
				t.Errorf("failed checks %q, want %q\nerror: %v", failed, tc.wantFailed, err)
			}
		})
	}
}

// TestPossumConforms: the reference passes its own check.
func TestPossumConforms(t *testing.T) {
	open := func(dir string) (workload.Store, error) { return store.Open(dir, nil) }
	if err := conformance.Run(context.Background(), open, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
