package decision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The examples' handlers under concurrent callers: each invariant holds
// however their appends interleave.

// callers is how many goroutines decide at once.
const callers = 20

// patient retries more often than there are appends in a test: every failed
// condition means another caller's append landed, so no caller runs out of
// attempts, and every call ends in a decision.
var patient = &decision.RetryOptions{Attempts: 1000, BaseBackoff: 50 * time.Microsecond, MaxBackoff: 2 * time.Millisecond}

// concurrently runs f(0) ... f(callers-1) at once and waits for them.
func concurrently(f func(i int)) {
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

func readAll(t *testing.T, s store.EventStore, types ...string) []dcb.SequencedEvent {
	t.Helper()
	var events []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), dcb.Query{Items: []dcb.QueryItem{{Types: types}}}, store.ReadOptions{}) {
		require.NoError(t, err)
		events = append(events, e)
	}
	return events
}

func TestCourseSubscriptionsUnderConcurrentCallers(t *testing.T) {
	stores(t, func(t *testing.T, s store.EventStore) {
		ctx := context.Background()
		const capacity = 3
		courses := []string{"c1", "c2", "c3", "c4"}
		for _, c := range courses {
			require.NoError(t, defineCourse(ctx, s, c, capacity))
		}
		// 10 students, two callers each, every caller trying every course
		// (in its own order): 20 students' places for 12 seats.
		var mu sync.Mutex
		var errs []error
		concurrently(func(i int) {
			student := fmt.Sprintf("s%d", i%10)
			for j := range courses {
				c := courses[(i+j)%len(courses)]
				err := decision.Retry(ctx, patient, func(ctx context.Context) error {
					return subscribe(ctx, s, student, c)
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
		for _, err := range errs {
			assert.NotErrorIs(t, err, dcb.ErrAppendConditionFailed)
			assert.Regexp(t, "is full|already takes|already subscribed", err.Error())
		}

		perCourse := map[string]int{}
		perStudent := map[string]int{}
		pairs := map[string]bool{}
		subs := readAll(t, s, "StudentSubscribedToCourse")
		for _, e := range subs {
			c, st := e.Tags[0], e.Tags[1]
			perCourse[c]++
			perStudent[st]++
			assert.False(t, pairs[c+" "+st], "%s subscribed twice to %s", st, c)
			pairs[c+" "+st] = true
		}
		for c, n := range perCourse {
			assert.LessOrEqual(t, n, capacity, "course %s over capacity", c)
		}
		for st, n := range perStudent {
			assert.LessOrEqual(t, n, maxCoursesPerStudent, "student %s over the course limit", st)
		}
		// A seat left free would mean a student under the limit was turned
		// away from a course with room: with 20 places for 12 seats, every
		// seat is taken.
		assert.Equal(t, capacity*len(courses), len(subs), "every seat taken")
	})
}

func TestUniqueUsernameUnderConcurrentCallers(t *testing.T) {
	stores(t, func(t *testing.T, s store.EventStore) {
		ctx := context.Background()
		names := []string{"alice", "bob", "carol", "dave", "erin"}
		results := make([]error, callers)
		concurrently(func(i int) {
			results[i] = decision.Retry(ctx, patient, func(ctx context.Context) error {
				return register(ctx, s, fmt.Sprintf("a%d", i), names[i%len(names)])
			})
		})
		registered := 0
		for i, err := range results {
			if err == nil {
				registered++
			} else {
				assert.ErrorIs(t, err, errUsernameTaken, "caller %d", i)
			}
		}
		assert.Equal(t, len(names), registered, "each username once")

		var got []string
		for _, e := range readAll(t, s, "AccountRegistered") {
			got = append(got, e.Tags[1])
		}
		slices.Sort(got)
		assert.Equal(t, []string{"username:alice", "username:bob", "username:carol", "username:dave", "username:erin"}, got)
	})
}

func TestInvoiceNumbersUnderConcurrentCallers(t *testing.T) {
	stores(t, func(t *testing.T, s store.EventStore) {
		ctx := context.Background()
		const perCaller = 5
		numbers := make([][]int, callers)
		concurrently(func(i int) {
			for range perCaller {
				var n int
				err := decision.Retry(ctx, patient, func(ctx context.Context) (err error) {
					n, err = createInvoice(ctx, s, fmt.Sprintf("customer%d", i))
					return err
				})
				if assert.NoError(t, err) {
					numbers[i] = append(numbers[i], n)
				}
			}
		})

		const n = callers * perCaller
		want := make([]int, n)
		for i := range want {
			want[i] = i + 1
		}
		got := slices.Concat(numbers...)
		slices.Sort(got)
		assert.Equal(t, want, got, "the callers were given 1..N, each once")

		var stored []int
		for _, e := range readAll(t, s, "InvoiceCreated") {
			var inv invoice
			require.NoError(t, json.Unmarshal(e.Data, &inv))
			stored = append(stored, inv.Number)
		}
		assert.Equal(t, want, stored, "the store holds 1..N in order: no gap, no repeat")
	})
}
