package decision_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/stretchr/testify/assert"
)

// fast retries without waiting long between attempts.
var fast = &decision.RetryOptions{Attempts: 4, BaseBackoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond}

func conditionFailed(attempt int) error {
	return fmt.Errorf("store: append: attempt %d: %w", attempt, dcb.ErrAppendConditionFailed)
}

func TestRetryGivesUpAfterTheBoundWithTheLastError(t *testing.T) {
	calls := 0
	err := decision.Retry(context.Background(), fast, func(context.Context) error {
		calls++
		return conditionFailed(calls)
	})
	assert.Equal(t, 4, calls)
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	assert.ErrorContains(t, err, "attempt 4", "the last error, not the first")
}

func TestRetryStopsAtTheFirstSuccess(t *testing.T) {
	calls := 0
	err := decision.Retry(context.Background(), fast, func(context.Context) error {
		calls++
		if calls < 3 {
			return conditionFailed(calls)
		}
		return nil
	})
	assert.NoError(t, err)
	assert.Equal(t, 3, calls)
}

func TestRetryReturnsOtherErrorsAtOnce(t *testing.T) {
	for _, want := range []error{
		errors.New("course is full"),
		fmt.Errorf("store: append: %w", dcb.ErrInvalidEvent),
		context.DeadlineExceeded,
	} {
		calls := 0
		err := decision.Retry(context.Background(), fast, func(context.Context) error {
			calls++
			return want
		})
		assert.Equal(t, want, err, "returned as is")
		assert.Equal(t, 1, calls, "not retried: %v", want)
	}
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forever := &decision.RetryOptions{Attempts: 1000, BaseBackoff: time.Hour, MaxBackoff: time.Hour}
	calls := 0
	err := decision.Retry(ctx, forever, func(context.Context) error {
		calls++
		cancel() // while the attempt runs: Retry must not wait out its backoff
		return conditionFailed(calls)
	})
	assert.Equal(t, 1, calls)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "and the last failed condition")
}

func TestRetryDefaults(t *testing.T) {
	calls := 0
	err := decision.Retry(context.Background(), &decision.RetryOptions{BaseBackoff: time.Microsecond, MaxBackoff: time.Microsecond}, func(context.Context) error {
		calls++
		return conditionFailed(calls)
	})
	assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	assert.Equal(t, decision.DefaultAttempts, calls)
}
