package decision

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffIsJitteredUnderADoublingBound(t *testing.T) {
	r := RetryOptions{BaseBackoff: time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	for attempt := 1; attempt <= 100; attempt++ {
		bound := r.MaxBackoff
		if attempt <= 7 {
			bound = r.BaseBackoff << (attempt - 1) // 1, 2, 4, ... 64 ms
		}
		for range 20 {
			d := r.backoff(attempt)
			assert.GreaterOrEqual(t, d, time.Duration(0))
			assert.LessOrEqual(t, d, bound, "attempt %d", attempt)
		}
	}
	base := RetryOptions{BaseBackoff: time.Second, MaxBackoff: time.Millisecond}
	assert.LessOrEqual(t, base.backoff(1), time.Millisecond, "the cap holds even below the base")
}

func TestRetryOptionsDefaults(t *testing.T) {
	want := RetryOptions{Attempts: DefaultAttempts, BaseBackoff: DefaultBaseBackoff, MaxBackoff: DefaultMaxBackoff}
	assert.Equal(t, want, (*RetryOptions)(nil).withDefaults())
	assert.Equal(t, want, (&RetryOptions{}).withDefaults())
	assert.Equal(t, 3, (&RetryOptions{Attempts: 3}).withDefaults().Attempts)
}
