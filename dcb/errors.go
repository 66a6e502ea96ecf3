package dcb

import "errors"

// Sentinel errors. Errors returned by possum wrap these; test with errors.Is.
var (
	// ErrAppendConditionFailed: an event matching the append condition's
	// query exists after its After position. Nothing was written.
	ErrAppendConditionFailed = errors.New("dcb: append condition failed")
	// ErrInvalidEvent: an event or batch cannot be stored (empty batch, empty
	// type or tag, data that is not JSON, ...). Nothing was written.
	ErrInvalidEvent = errors.New("dcb: invalid event")
	// ErrIDConflict: an event's ID is already the ID of another event, or
	// of the same event in another append (a batch mixing IDs the store
	// holds with IDs it does not, or holding them in another order, is no
	// retry). Nothing was written. A retry of an append whose events all
	// carry IDs succeeds, without writing, when the store holds exactly
	// those events: see Event.ID.
	ErrIDConflict = errors.New("dcb: event id conflict")
	// ErrInvalidQuery: a query cannot be used (an item with neither types nor
	// tags, an empty tag, ...). Nothing was read or written.
	ErrInvalidQuery = errors.New("dcb: invalid query")
)
