package cluster

import (
	"os"
	"strconv"
)

// soak is the factor POSSUM_CLUSTER_SOAK sets (1 when unset): the fault
// loops and the model test run that many times longer. Soak runs are meant
// without the race detector (Raft elections take seconds).
func soak() int {
	v, err := strconv.Atoi(os.Getenv("POSSUM_CLUSTER_SOAK"))
	if err != nil || v < 1 {
		return 1
	}
	return v
}
