package decision

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/possumstore/possum/dcb"
)

// RetryOptions bound Retry. A nil *RetryOptions, or a zero field, means the
// default.
type RetryOptions struct {
	// Attempts is how many times fn runs at most, the first included.
	// 0: DefaultAttempts.
	Attempts int
	// BaseBackoff is the longest wait after the first failed attempt; it
	// doubles after each further one, up to MaxBackoff. Each wait is drawn
	// at random between zero and that bound (full jitter), so that callers
	// that collided once do not collide again. 0: DefaultBaseBackoff.
	BaseBackoff time.Duration
	// MaxBackoff caps every wait. 0: DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// The defaults of RetryOptions: a decision read from an embedded store is
// retaken within milliseconds, and ten attempts ride out a burst of
// writers contending for the same facts.
const (
	DefaultAttempts    = 10
	DefaultBaseBackoff = 2 * time.Millisecond
	DefaultMaxBackoff  = 250 * time.Millisecond
)

// Retry runs fn, a function that builds a Model, decides and appends, until
// it returns anything but an error wrapping dcb.ErrAppendConditionFailed,
// and returns that: nil, or fn's own error at once, unretried. After
// o.Attempts failed conditions it gives up and returns the last one
// (errors.Is(err, dcb.ErrAppendConditionFailed) holds). It waits a jittered
// backoff between attempts, and stops waiting when ctx ends, returning an
// error that wraps both ctx.Err() and the last failed condition.
func Retry(ctx context.Context, o *RetryOptions, fn func(ctx context.Context) error) error {
	r := o.withDefaults()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if !errors.Is(err, dcb.ErrAppendConditionFailed) {
			return err
		}
		if attempt >= r.Attempts {
			return fmt.Errorf("decision: gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(r.backoff(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("decision: retry stopped after %d attempts: %w (last: %w)", attempt, ctx.Err(), err)
		}
	}
}

func (o *RetryOptions) withDefaults() RetryOptions {
	var r RetryOptions
	if o != nil {
		r = *o
	}
	if r.Attempts <= 0 {
		r.Attempts = DefaultAttempts
	}
	if r.BaseBackoff <= 0 {
		r.BaseBackoff = DefaultBaseBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	return r
}

// backoff returns the wait after the given failed attempt (1, 2, ...): a
// random duration in [0, min(MaxBackoff, BaseBackoff·2^(attempt-1))].
func (r RetryOptions) backoff(attempt int) time.Duration {
	bound := r.MaxBackoff
	if shift := attempt - 1; shift < 62 && r.BaseBackoff <= r.MaxBackoff>>shift {
		bound = r.BaseBackoff << shift
	}
	return rand.N(bound + 1)
}
