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

// invoice is the data of an InvoiceCreated event.
type invoice struct {
	Number   int    `json:"number"`
	Customer string `json:"customer"`
}

// nextInvoiceNumber projects the number the next invoice gets.
func nextInvoiceNumber() decision.Projection[int] {
	return decision.Projection[int]{
		Query:   dcb.Query{Items: []dcb.QueryItem{{Types: []string{"InvoiceCreated"}}}},
		Initial: 1,
		Fold: func(_ int, e dcb.SequencedEvent) (int, error) {
			var inv invoice
			err := json.Unmarshal(e.Data, &inv)
			return inv.Number + 1, err
		},
	}
}

// createInvoice is a command handler: it creates an invoice with the next
// number. Two invoices created at once cannot both get it: the second
// append fails its condition, and Retry gives it the number after.
func createInvoice(ctx context.Context, s store.EventStore, customer string) (int, error) {
	var m decision.Model
	next := decision.Add(&m, nextInvoiceNumber())
	cond, err := m.Build(ctx, s)
	if err != nil {
		return 0, err
	}
	inv := invoice{Number: next.State(), Customer: customer}
	data, err := json.Marshal(inv)
	if err != nil {
		return 0, err
	}
	_, err = s.Append(ctx, []dcb.Event{{
		Type: "InvoiceCreated",
		Tags: []string{fmt.Sprintf("invoice:%d", inv.Number), "customer:" + customer},
		Data: data,
	}}, &cond)
	return inv.Number, err
}

// Gap-free invoice numbers: each invoice gets the number after the last
// one, and the append condition keeps two invoices from sharing a number.
func Example_invoiceNumbers() {
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

	for _, customer := range []string{"acme", "globex", "acme"} {
		var number int
		err := decision.Retry(ctx, nil, func(ctx context.Context) (err error) {
			number, err = createInvoice(ctx, s, customer)
			return err
		})
		if err != nil {
			panic(err)
		}
		fmt.Printf("invoice %d for %s\n", number, customer)
	}
	// Output:
	// invoice 1 for acme
	// invoice 2 for globex
	// invoice 3 for acme
}
