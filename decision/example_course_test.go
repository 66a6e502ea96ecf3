package decision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
)

// maxCoursesPerStudent is how many courses one student may take.
const maxCoursesPerStudent = 2

// courseDefined is the data of a CourseDefined event.
type courseDefined struct {
	Capacity int `json:"capacity"`
}

// course is what a decision about a course needs to know of it.
type course struct {
	Defined     bool
	Capacity    int
	Subscribers int
}

// courseState projects a course's definition and subscriptions.
func courseState(courseID string) decision.Projection[course] {
	return decision.Projection[course]{
		Query: dcb.Query{Items: []dcb.QueryItem{{
			Types: []string{"CourseDefined", "StudentSubscribedToCourse"},
			Tags:  []string{"course:" + courseID},
		}}},
		Fold: func(c course, e dcb.SequencedEvent) (course, error) {
			switch e.Type {
			case "CourseDefined":
				var d courseDefined
				err := json.Unmarshal(e.Data, &d)
				c.Defined, c.Capacity = true, d.Capacity
				return c, err
			case "StudentSubscribedToCourse":
				c.Subscribers++
			}
			return c, nil
		},
	}
}

// studentCourses projects how many courses a student has subscribed to.
func studentCourses(studentID string) decision.Projection[int] {
	return decision.Projection[int]{
		Query: dcb.Query{Items: []dcb.QueryItem{{
			Types: []string{"StudentSubscribedToCourse"},
			Tags:  []string{"student:" + studentID},
		}}},
		Fold: func(n int, _ dcb.SequencedEvent) (int, error) { return n + 1, nil },
	}
}

// subscribed projects whether a student has subscribed to a course.
func subscribed(studentID, courseID string) decision.Projection[bool] {
	return decision.Projection[bool]{
		Query: dcb.Query{Items: []dcb.QueryItem{{
			Types: []string{"StudentSubscribedToCourse"},
			Tags:  []string{"course:" + courseID, "student:" + studentID},
		}}},
		Fold: func(bool, dcb.SequencedEvent) (bool, error) { return true, nil },
	}
}

// defineCourse is a command handler: it defines a course, once.
func defineCourse(ctx context.Context, s store.EventStore, courseID string, capacity int) error {
	var m decision.Model
	c := decision.Add(&m, courseState(courseID))
	cond, err := m.Build(ctx, s)
	if err != nil {
		return err
	}
	if c.State().Defined {
		return fmt.Errorf("course %s already exists", courseID)
	}
	data, err := json.Marshal(courseDefined{Capacity: capacity})
	if err != nil {
		return err
	}
	_, err = s.Append(ctx, []dcb.Event{{
		Type: "CourseDefined",
		Tags: []string{"course:" + courseID},
		Data: data,
	}}, &cond)
	return err
}

// subscribe is a command handler: one decision on three projections of
// three types, guarded by one condition.
func subscribe(ctx context.Context, s store.EventStore, studentID, courseID string) error {
	var m decision.Model
	c := decision.Add(&m, courseState(courseID))
	taken := decision.Add(&m, studentCourses(studentID))
	already := decision.Add(&m, subscribed(studentID, courseID))
	cond, err := m.Build(ctx, s)
	if err != nil {
		return err
	}
	switch {
	case !c.State().Defined:
		return fmt.Errorf("course %s does not exist", courseID)
	case already.State():
		return fmt.Errorf("student %s already subscribed to course %s", studentID, courseID)
	case c.State().Subscribers >= c.State().Capacity:
		return fmt.Errorf("course %s is full", courseID)
	case taken.State() >= maxCoursesPerStudent:
		return fmt.Errorf("student %s already takes %d courses", studentID, maxCoursesPerStudent)
	}
	_, err = s.Append(ctx, []dcb.Event{{
		Type: "StudentSubscribedToCourse",
		Tags: []string{"course:" + courseID, "student:" + studentID},
	}}, &cond)
	return err
}

// Course subscriptions: a course has a capacity and a student a course
// limit. One decision depends on both, and on whether the student already
// takes the course: three projections, three state types.
func Example_courseSubscriptions() {
	dir, err := os.MkdirTemp("", "possum-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()

	for _, id := range []string{"c1", "c2", "c3"} {
		if err := defineCourse(ctx, s, id, 2); err != nil {
			panic(err)
		}
	}
	for _, sub := range []struct{ student, course string }{
		{"s1", "c1"},
		{"s2", "c1"},
		{"s3", "c1"}, // c1 is full
		{"s1", "c1"}, // again
		{"s1", "c2"},
		{"s1", "c3"}, // a third course for s1
		{"s1", "c4"},
	} {
		// Retry takes the decision again when a concurrent append
		// changed what it was based on.
		err := decision.Retry(ctx, nil, func(ctx context.Context) error {
			return subscribe(ctx, s, sub.student, sub.course)
		})
		fmt.Printf("%s -> %s: %v\n", sub.student, sub.course, orOK(err))
	}
	fmt.Println(defineCourse(ctx, s, "c1", 10))
	// Output:
	// s1 -> c1: ok
	// s2 -> c1: ok
	// s3 -> c1: course c1 is full
	// s1 -> c1: student s1 already subscribed to course c1
	// s1 -> c2: ok
	// s1 -> c3: student s1 already takes 2 courses
	// s1 -> c4: course c4 does not exist
	// course c1 already exists
}

// orOK returns err, or "ok" when it is nil.
func orOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}
