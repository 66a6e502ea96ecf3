package workload

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ErrNoRSS: this platform offers no resident set size to read (only Linux's
// /proc/self/status is read).
var ErrNoRSS = errors.New("workload: resident memory unknown on " + runtime.GOOS)

// ResidentBytes returns the resident set size of this process (VmRSS of
// /proc/self/status) after a garbage collection, or ErrNoRSS where there
// is no /proc.
func ResidentBytes() (int64, error) {
	runtime.GC()
	status, err := os.ReadFile("/proc/self/status")
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNoRSS
	}
	if err != nil {
		return 0, fmt.Errorf("workload: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("workload: VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, ErrNoRSS
}

// Reopen is what opening a closed store cost, measured inside the process
// that opened it: run it in a fresh process for RSS to be the store's.
type Reopen struct {
	Elapsed time.Duration // time open took
	RSS     int64         // resident bytes of the process once open; 0: unknown
}

// MeasureOpen calls open, times it, and reads the process's resident memory
// while the store is open; the caller closes the store it returns.
func MeasureOpen(open func() (Store, error)) (Reopen, Store, error) {
	start := time.Now()
	s, err := open()
	if err != nil {
		return Reopen{}, nil, err
	}
	r := Reopen{Elapsed: time.Since(start)}
	switch rss, err := ResidentBytes(); {
	case err == nil:
		r.RSS = rss
	case !errors.Is(err, ErrNoRSS):
		s.Close()
		return Reopen{}, nil, err
	}
	return r, s, nil
}
