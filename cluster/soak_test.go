package cluster

import (
	"testing"

	"github.com/possumstore/possum/internal/testkit/testenv"
)

// soak is the factor POSSUM_CLUSTER_SOAK sets (1 when unset): the fault
// loops and the model test run that many times longer. Soak runs are meant
// without the race detector (Raft elections take seconds).
func soak(t testing.TB) int { return max(testenv.Int(t, "POSSUM_CLUSTER_SOAK", 1), 1) }

// scaled returns n, times POSSUM_CLUSTER_SOAK when set.
func scaled(t testing.TB, n int) int { return n * soak(t) }
