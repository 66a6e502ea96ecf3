package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// The demo's rules: a course has demoSeats seats, a student takes at most
// demoMaxCourses courses.
const (
	demoSeats      = 2
	demoMaxCourses = 2
)

// demoRoster names the students, in the order they come to enrol.
var demoRoster = []string{"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo"}

func demoCommand(*flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		dir := "possum-demo"
		if len(args) > 0 {
			dir = args[0]
		}
		return runDemo(context.Background(), dir, stdout)
	}
}

// runDemo shows DCB on a real store: each run opens a course and lets
// students enrol, two of them at once for the last seat, so that the
// store's append condition turns the later decision away.
func runDemo(ctx context.Context, dir string, out io.Writer) error {
	s, err := openStore(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	d := &demo{s: s, dir: dir, out: out}
	if err := d.run(ctx); err != nil {
		return err
	}
	return s.Close()
}

type demo struct {
	s      *store.Store
	dir    string
	out    io.Writer
	course string // this run's
}

func (d *demo) run(ctx context.Context) error {
	before := d.s.Head()
	run, err := d.nextCourse(ctx)
	if err != nil {
		return err
	}
	d.header(run, before)
	pos, err := d.s.Append(ctx, []dcb.Event{{Type: "CourseDefined", Tags: []string{courseTag(d.course)},
		Data: json.RawMessage(fmt.Sprintf(`{"seats":%d}`, demoSeats))}}, nil)
	if err != nil {
		return err
	}
	d.line(fmt.Sprintf("course %s opens with %d seats", d.course, demoSeats), pos)
	students, err := d.students(ctx)
	if err != nil {
		return err
	}
	if err := d.enrol(ctx, students[0]); err != nil {
		return err
	}
	if err := d.race(ctx, students[1], students[2]); err != nil {
		return err
	}
	if err := d.showEvents(ctx, before+1); err != nil {
		return err
	}
	if err := d.showFiles(ctx, before+1); err != nil {
		return err
	}
	d.showMore()
	return nil
}

// nextCourse picks this run's course: one more than the courses earlier
// runs defined, and the number of this run.
func (d *demo) nextCourse(ctx context.Context) (int, error) {
	defined, err := d.count(ctx, dcb.QueryItem{Types: []string{"CourseDefined"}})
	if err != nil {
		return 0, err
	}
	run := defined + 1
	for {
		d.course = strconv.Itoa(run)
		n, err := d.count(ctx, dcb.QueryItem{Tags: []string{courseTag(d.course)}})
		if err != nil || n == 0 {
			return run, err
		}
		run++
	}
}

func (d *demo) count(ctx context.Context, it dcb.QueryItem) (int, error) {
	n := 0
	for _, err := range d.s.Read(ctx, dcb.Query{Items: []dcb.QueryItem{it}}, store.ReadOptions{}) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

func (d *demo) header(run int, before uint64) {
	earlier := "a new store"
	if before > 0 {
		earlier = fmt.Sprintf("the store holds %d events from earlier runs", before)
	}
	fmt.Fprintf(d.out, "possum demo, run %d, in %s: %s\n", run, d.dir, earlier)
	fmt.Fprintf(d.out, `Rules: a course has %d seats; a student takes at most %d courses. Each decision
reads the events of its course and its student, then appends on the condition
that none came since: the store itself turns a stale decision away.

`, demoSeats, demoMaxCourses)
}

// line prints what happened, and at which position when it was appended.
func (d *demo) line(what string, pos uint64) {
	if pos == 0 {
		fmt.Fprintf(d.out, "%s\n", what)
		return
	}
	fmt.Fprintf(d.out, "%-64s position %d\n", what, pos)
}

// students returns the three students of this run: the first on the roster
// with room for another course. A student before them who has none tries
// too, and is refused.
func (d *demo) students(ctx context.Context) ([]string, error) {
	var picked []string
	refused := false
	for i := 0; len(picked) < 3; i++ {
		name := rosterName(i)
		e, err := decide(ctx, d.s, name, d.course)
		if err != nil {
			return nil, err
		}
		if e.courses < demoMaxCourses {
			picked = append(picked, name)
		} else if !refused {
			refused = true
			d.line(fmt.Sprintf("%s may not enrol: %s", name, e.refusal()), 0)
		}
	}
	return picked, nil
}

func rosterName(i int) string {
	if i < len(demoRoster) {
		return demoRoster[i]
	}
	return fmt.Sprintf("student-%d", i+1)
}

// enrol lets one student decide and append alone.
func (d *demo) enrol(ctx context.Context, student string) error {
	e, err := decide(ctx, d.s, student, d.course)
	if err != nil {
		return err
	}
	if why := e.refusal(); why != "" {
		d.line(fmt.Sprintf("%s may not enrol: %s", student, why), 0)
		return nil
	}
	pos, err := e.append(ctx, d.s)
	if err != nil {
		return err
	}
	d.line(fmt.Sprintf("%s enrols in course %s", student, d.course), pos)
	return nil
}

// racer is one side of the race for the last seat.
type racer struct {
	first, again enrolment          // the decision before the race, and after a rejection
	pos          uint64             // appended at, 0: not
	rejected     bool               // by the store: the condition failed
	beaten       dcb.SequencedEvent // by this event
	err          error
}

// race lets two students decide at the same time, both reading before
// either appends, then append at once: one append wins, and the store's
// condition check rejects the other, whose student reads again and decides
// again.
func (d *demo) race(ctx context.Context, a, b string) error {
	racers := []*racer{{}, {}}
	var decided, done sync.WaitGroup
	start := make(chan struct{})
	decided.Add(2)
	for i, student := range []string{a, b} {
		r := racers[i]
		done.Go(func() {
			r.first, r.err = decide(ctx, d.s, student, d.course)
			decided.Done()
			<-start
			if r.err == nil {
				d.runRacer(ctx, r)
			}
		})
	}
	decided.Wait()
	close(start) // both have read: now both append
	done.Wait()
	for _, r := range racers {
		if r.err != nil {
			return r.err
		}
	}
	left := demoSeats - racers[0].first.taken
	fmt.Fprintf(d.out, "%s and %s both read up to position %d, see %d seat left, and append at once:\n",
		a, b, racers[0].first.seen, left)
	if racers[0].rejected {
		racers[0], racers[1] = racers[1], racers[0] // the winner first
	}
	for _, r := range racers {
		d.showRacer(r)
	}
	return nil
}

// runRacer appends r's decision, and when the store rejects it, reads and
// decides again.
func (d *demo) runRacer(ctx context.Context, r *racer) {
	r.pos, r.err = r.first.append(ctx, d.s)
	if !errors.Is(r.err, dcb.ErrAppendConditionFailed) {
		return
	}
	r.rejected = true
	if r.beaten, r.err = firstMatch(ctx, d.s, r.first.condition()); r.err != nil {
		return
	}
	r.again, r.err = decide(ctx, d.s, r.first.student, d.course)
	if r.err == nil && r.again.refusal() == "" {
		r.pos, r.err = r.again.append(ctx, d.s)
	}
}

func (d *demo) showRacer(r *racer) {
	who := r.first.student
	if !r.rejected {
		d.line(fmt.Sprintf("  %-4s enrolled in course %s", who, d.course), r.pos)
		return
	}
	fmt.Fprintf(d.out, "  %-4s REJECTED: the store's append condition failed (event %d came after position %d)\n",
		who, r.beaten.Position, r.first.seen)
	if why := r.again.refusal(); why != "" {
		fmt.Fprintf(d.out, "  %-4s reads again (up to position %d), decides again: %s\n", who, r.again.seen, why)
		return
	}
	d.line(fmt.Sprintf("  %-4s reads again, decides again: enrolled in course %s", who, d.course), r.pos)
}

// firstMatch returns the first event that fails cond. The store answers
// a rejected append only once that event is acknowledged, so it can be read.
func firstMatch(ctx context.Context, s *store.Store, cond *dcb.AppendCondition) (dcb.SequencedEvent, error) {
	for e, err := range s.Read(ctx, cond.FailIfEventsMatch, store.ReadOptions{From: cond.After + 1, Limit: 1}) {
		return e, err
	}
	return dcb.SequencedEvent{}, errors.New("demo: no event fails the condition")
}

// showEvents prints the events of this run's course, from position from.
func (d *demo) showEvents(ctx context.Context, from uint64) error {
	q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{courseTag(d.course)}}}}
	fmt.Fprintf(d.out, "\nevents of course %s:\n", d.course)
	for e, err := range d.s.Read(ctx, q, store.ReadOptions{From: from}) {
		if err != nil {
			return err
		}
		row := fmt.Sprintf("  %4d  %-16s %-24s %s", e.Position, e.Type, strings.Join(e.Tags, " "), e.Data)
		fmt.Fprintln(d.out, strings.TrimRight(row, " "))
	}
	return nil
}

// showFiles prints a few of the store's files, once the projector has
// written this run's.
func (d *demo) showFiles(ctx context.Context, from uint64) error {
	head := d.s.Head()
	if err := d.s.WaitProjected(ctx, head); err != nil {
		return err
	}
	segments, err := os.ReadDir(filepath.Join(d.dir, storedir.WALDir))
	if err != nil {
		return err
	}
	segment := ""
	for _, e := range segments {
		if strings.Trim(e.Name(), "0123456789") == "" {
			segment = e.Name()
		}
	}
	fmt.Fprintf(d.out, "\nfiles in %s, for any program to read:\n", d.dir)
	for _, f := range []struct{ path, what string }{
		{filepath.Join(storedir.WALDir, segment), "the write-ahead log: the events, checksummed"},
		{filepath.Join(storedir.EventsDir, storedir.EventFileName(from)), "one JSON file per event, from this run's first"},
		{filepath.Join(storedir.EventsDir, storedir.EventFileName(head)), fmt.Sprintf("to its last (%d in the store)", head)},
		{filepath.Join(storedir.IndexDir, storedir.TagsDir, storedir.IndexFileName(courseTag(d.course))), "the positions of the events tagged " + courseTag(d.course)},
	} {
		fmt.Fprintf(d.out, "  %-38s %s\n", f.path, f.what)
	}
	return nil
}

func (d *demo) showMore() {
	dir := shellWord(d.dir)
	fmt.Fprintf(d.out, `
look further:
  possum read %s --tag %s --table
  possum tail %s --follow     (then run the demo again in another terminal)
  possum stats %s
`, dir, courseTag(d.course), dir, dir)
}

// shellWord is s as a shell reads it back as one argument that is no flag.
func shellWord(s string) string {
	if strings.HasPrefix(s, "-") {
		s = "." + string(filepath.Separator) + s
	}
	if strings.ContainsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n'\"\\$`*?[]{}()<>|&;!#~", r) }) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

func courseTag(course string) string   { return "course:" + course }
func studentTag(student string) string { return "student:" + student }

// enrolment is a student's decision to enrol in a course, from what was
// read of the two: the course's events and the student's enrolments.
type enrolment struct {
	student, course string
	query           dcb.Query // what the decision read: its consistency boundary
	seen            uint64    // the head when it read
	defined         bool      // the course exists
	seats, taken    int       // of the course
	courses         int       // the student takes
	enrolled        bool      // in this course already
}

func decide(ctx context.Context, s *store.Store, student, course string) (enrolment, error) {
	e := enrolment{student: student, course: course, seen: s.Head(), query: dcb.Query{Items: []dcb.QueryItem{
		{Tags: []string{courseTag(course)}},
		{Types: []string{"StudentEnrolled"}, Tags: []string{studentTag(student)}},
	}}}
	for ev, err := range s.Read(ctx, e.query, store.ReadOptions{}) {
		if err != nil {
			return e, err
		}
		e.seen = max(e.seen, ev.Position)
		e.apply(ev.Event)
	}
	return e, nil
}

func (e *enrolment) apply(ev dcb.Event) {
	inCourse := slices.Contains(ev.Tags, courseTag(e.course))
	switch {
	case ev.Type == "CourseDefined" && inCourse:
		var def struct{ Seats int }
		e.defined = json.Unmarshal(ev.Data, &def) == nil
		e.seats = def.Seats
	case ev.Type == "StudentEnrolled":
		mine := slices.Contains(ev.Tags, studentTag(e.student))
		if inCourse {
			e.taken++
			e.enrolled = e.enrolled || mine
		}
		if mine {
			e.courses++
		}
	}
}

// refusal says why the student may not enrol, "" when they may.
func (e enrolment) refusal() string {
	switch {
	case !e.defined:
		return fmt.Sprintf("there is no course %s", e.course)
	case e.enrolled:
		return fmt.Sprintf("%s is in course %s already", e.student, e.course)
	case e.taken >= e.seats:
		return fmt.Sprintf("course %s is full (%d of %d seats taken)", e.course, e.taken, e.seats)
	case e.courses >= demoMaxCourses:
		return fmt.Sprintf("%s takes %d courses already, the most a student may", e.student, e.courses)
	}
	return ""
}

// condition is what the decision assumed: nothing it read has changed.
func (e enrolment) condition() *dcb.AppendCondition {
	return &dcb.AppendCondition{FailIfEventsMatch: e.query, After: e.seen}
}

func (e enrolment) append(ctx context.Context, s *store.Store) (uint64, error) {
	ev := dcb.Event{Type: "StudentEnrolled", Tags: []string{courseTag(e.course), studentTag(e.student)}}
	return s.Append(ctx, []dcb.Event{ev}, e.condition())
}
