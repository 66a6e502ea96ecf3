package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/bench/conformance"
)

// TestConformance runs the DCB conformance check against every peer: a peer
// that fails it is no peer, and the runner refuses to measure it.
func TestConformance(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range conformance.Checks() {
				t.Run(c.Name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "store")
					if err := conformance.RunOne(context.Background(), c, p.durableOpener(), dir); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}
