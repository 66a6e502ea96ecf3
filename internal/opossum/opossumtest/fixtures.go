// Package opossumtest helps test the Opossum importer: what the hand-written
// fixtures in internal/opossum/testdata hold, written out by hand again as
// the events they must import as, and a writer of Opossum stores for tests
// that need many events or a store being written.
package opossumtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
)

// Testdata is the directory of the fixtures.
func Testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Copy copies the fixture testdata/name into a new temporary directory of
// t and returns the copy, named as the fixture's last element: tests
// change their copy (add directories git keeps no copy of, hold its lock).
func Copy(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(Testdata(), name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// event is a possum event as a fixture must import as. The timestamp is
// set by assignment so that this compiles whether dcb.SequencedEvent
// declares Timestamp or promotes it from dcb.Event.
func event(pos uint64, typ string, tags []string, data string, md map[string]string, ts string) dcb.SequencedEvent {
	var e dcb.SequencedEvent
	e.Position, e.Type, e.Tags, e.Data, e.Metadata = pos, typ, tags, json.RawMessage(data), md
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		panic(err)
	}
	e.Timestamp = t
	return e
}

// crlf writes s's line ends as Windows does.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const (
	student = "3f2b8c1e-6d4a-4e0b-9c7d-2a1f5e8b9c03"
	course  = "c0a80101-0000-4000-8000-000000000042"
)

// Want returns the events the fixture at testdata/name imports as, in
// position order.
func Want(name string) []dcb.SequencedEvent {
	switch name {
	case "current":
		return []dcb.SequencedEvent{
			event(1, "StudentRegisteredEvent", []string{"studentId:" + student, "studentEmail:zoe+obrien@example.com"}, crlf(`{
      "$type": "Opossum.Samples.CourseManagement.Events.StudentRegisteredEvent, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null",
      "studentId": "3f2b8c1e-6d4a-4e0b-9c7d-2a1f5e8b9c03",
      "firstName": "Zo\u00EB",
      "lastName": "O\u0027Brien",
      "email": "zoe\u002Bobrien@example.com"
    }`), map[string]string{"correlationId": "9b1d4c2e-0f3a-4b5c-8d6e-7f8091a2b3c4"}, "2026-03-02T08:15:42.1234567Z"),
			event(2, "CourseCreatedEvent", []string{"courseId:" + course}, crlf(`{
      "$type": "Opossum.Samples.CourseManagement.Events.CourseCreatedEvent, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null",
      "courseId": "c0a80101-0000-4000-8000-000000000042",
      "name": "Event Sourcing \u0026 DCB",
      "maxStudents": 30
    }`), map[string]string{
				"timestamp":     "2026-03-02T09:15:42.98+01:00",
				"correlationId": "9b1d4c2e-0f3a-4b5c-8d6e-7f8091a2b3c4",
				"causationId":   "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a",
				"operationId":   "11111111-2222-4333-8444-555555555555",
				"userId":        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
			}, "2026-03-02T08:15:42.98Z"),
			event(3, "StudentEnrolledToCourseEvent", []string{"courseId:" + course, "studentId:" + student}, crlf(`{
      "$type": "Opossum.Samples.CourseManagement.Events.StudentEnrolledToCourseEvent, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null",
      "courseId": "c0a80101-0000-4000-8000-000000000042",
      "studentId": "3f2b8c1e-6d4a-4e0b-9c7d-2a1f5e8b9c03"
    }`), nil, "2026-03-02T08:20:00.5Z"),
			event(4, "CourseAnnouncementPostedEvent", []string{`course\:id:` + course, `C\:\\courses:room:2.14`, "draft"}, crlf(`{
      "$type": "Opossum.Samples.CourseManagement.Events.CourseAnnouncementPostedEvent, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null",
      "announcementId": "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
      "courseId": "c0a80101-0000-4000-8000-000000000042",
      "title": "Room change",
      "body": "Lecture moves to room 2.14\n\u003Cbring laptops\u003E",
      "idempotencyToken": "7c6b5a49-3827-4615-a4b3-c2d1e0f9a8b7"
    }`), map[string]string{"userId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}, "2026-03-02T09:00:00Z"),
			event(5, "CourseBooksOrderedEvent", nil, crlf(`{
      "$type": "Opossum.Samples.CourseManagement.Events.CourseBooksOrderedEvent, Opossum.Samples.CourseManagement, Version=0.5.0.0, Culture=neutral, PublicKeyToken=null",
      "orderId": "0f0e0d0c-0b0a-4908-8706-050403020100",
      "lines": [
        {
          "bookId": "b1",
          "quantity": 2,
          "unitPrice": 39.95
        },
        {
          "bookId": "b2",
          "quantity": 1,
          "unitPrice": 12.5
        }
      ],
      "coupon": null
    }`), nil, "2026-03-02T10:00:00.0000001Z"),
		}
	case "seed":
		const c, s = "01000000-0000-4000-8000-000000000001", "02000000-0000-4000-8000-000000000002"
		return []dcb.SequencedEvent{
			event(1, "CourseCreated", []string{"courseId:" + c}, `{
      "$type": "Opossum.Samples.CourseManagement.CourseCreation.CourseCreated, Opossum.Samples.CourseManagement, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
      "courseId": "01000000-0000-4000-8000-000000000001",
      "name": "Seeds",
      "studentLimit": 10
    }`, nil, "2026-01-30T21:04:11.3318828Z"),
			event(2, "StudentRegistered", []string{"studentId:" + s}, `{
      "$type": "Opossum.Samples.CourseManagement.StudentRegistration.StudentRegistered, Opossum.Samples.CourseManagement, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
      "studentId": "02000000-0000-4000-8000-000000000002",
      "firstName": "Ada",
      "lastName": "Lovelace"
    }`, map[string]string{"correlationId": "0c000000-0000-4000-8000-00000000000c"}, "2026-01-30T21:04:11.4Z"),
			event(3, "StudentEnlistedToCourse", []string{"courseId:" + c, "studentId:" + s}, `{
      "$type": "Opossum.Samples.CourseManagement.CourseEnlistment.StudentEnlistedToCourse, Opossum.Samples.CourseManagement, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
      "courseId": "01000000-0000-4000-8000-000000000001",
      "studentId": "02000000-0000-4000-8000-000000000002"
    }`, map[string]string{"correlationId": "0c000000-0000-4000-8000-00000000000c", "causationId": "0d000000-0000-4000-8000-00000000000d"}, "2026-01-30T21:04:12Z"),
		}
	case "minified":
		const cust = "0e000000-0000-4000-8000-00000000000e"
		return []dcb.SequencedEvent{
			event(1, "InvoiceCreatedEvent", []string{"invoiceNumber:1001", "customerId:" + cust},
				`{"$type":"Opossum.Samples.CourseManagement.Events.InvoiceCreatedEvent, Opossum.Samples.CourseManagement, Version=0.2.0.0, Culture=neutral, PublicKeyToken=null","invoiceNumber":1001,"customerId":"0e000000-0000-4000-8000-00000000000e","amount":249.5,"currency":"EUR"}`,
				map[string]string{"userId": "0f000000-0000-4000-8000-00000000000f"}, "2026-02-21T14:30:00.0012345Z"),
			event(2, "InvoiceCreatedEvent", []string{"invoiceNumber:1002", "customerId:" + cust},
				`{"$type":"Opossum.Samples.CourseManagement.Events.InvoiceCreatedEvent, Opossum.Samples.CourseManagement, Version=0.2.0.0, Culture=neutral, PublicKeyToken=null","invoiceNumber":1002,"customerId":"0e000000-0000-4000-8000-00000000000e","amount":0,"currency":"EUR"}`,
				map[string]string{"timestamp": "2026-02-21T15:45:30.25-05:00", "operationId": "10000000-0000-4000-8000-000000000010"}, "2026-02-21T20:45:30.25Z"),
			event(3, "Emoji 🦦 event", []string{"über:été"},
				`{"$type":"Samples.Emoji, Samples, Version=0.2.0.0, Culture=neutral, PublicKeyToken=null","text":"\uD83E\uDDA6"}`,
				nil, "2026-02-21T16:00:00.9999999Z"),
		}
	case "root/Billing":
		return []dcb.SequencedEvent{
			event(1, "InvoiceCreatedEvent", []string{"invoiceNumber:1"},
				`{"$type":"Billing.InvoiceCreatedEvent, Billing, Version=0.3.0.0, Culture=neutral, PublicKeyToken=null","invoiceNumber":1}`, nil, "2026-02-23T10:00:00.1Z"),
			event(2, "InvoicePaidEvent", []string{"invoiceNumber:1"},
				`{"$type":"Billing.InvoicePaidEvent, Billing, Version=0.3.0.0, Culture=neutral, PublicKeyToken=null","invoiceNumber":1}`, nil, "2026-02-23T10:05:00.2Z"),
		}
	case "root/Empty": // as Opossum's StorageInitializer leaves a store: an empty ledger
		return nil
	case "root/Shop":
		return []dcb.SequencedEvent{Shop(1), Shop(2)}
	}
	panic("opossumtest: no fixture " + name)
}

// Shop is the event at position p (1 to 9) of the shop fixtures under
// testdata/root and testdata/damage: an OrderPlaced tagged order:o<p>,
// stamped p seconds and p microseconds past noon.
func Shop(p int) dcb.SequencedEvent {
	n := strconv.Itoa(p)
	return event(uint64(p), "OrderPlaced", []string{"order:o" + n}, `{
      "$type": "Shop.Events.OrderPlaced, Shop, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
      "n": `+n+`
    }`, nil, "2026-03-05T12:00:0"+n+".00000"+n+"Z")
}
