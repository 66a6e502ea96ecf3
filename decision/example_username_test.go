package decision_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
)

// errUsernameTaken: another account registered the username first.
var errUsernameTaken = errors.New("username taken")

// usernameTaken projects whether an account has registered a username.
func usernameTaken(username string) decision.Projection[bool] {
	return decision.Projection[bool]{
		Query: dcb.Query{Items: []dcb.QueryItem{{
			Types: []string{"AccountRegistered"},
			Tags:  []string{"username:" + username},
		}}},
		Fold: func(bool, dcb.SequencedEvent) (bool, error) { return true, nil },
	}
}

// register is a command handler: it registers an account under a username
// no other account has. The condition covers the username only, so
// registrations of other usernames never fail it.
func register(ctx context.Context, s store.EventStore, accountID, username string) error {
	var m decision.Model
	taken := decision.Add(&m, usernameTaken(username))
	cond, err := m.Build(ctx, s)
	if err != nil {
		return err
	}
	if taken.State() {
		return fmt.Errorf("%w: %s", errUsernameTaken, username)
	}
	_, err = s.Append(ctx, []dcb.Event{{
		Type: "AccountRegistered",
		Tags: []string{"account:" + accountID, "username:" + username},
	}}, &cond)
	return err
}

// A unique username: without a unique index, the append condition alone
// keeps two accounts from registering the same name.
func Example_uniqueUsername() {
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

	for _, r := range []struct{ account, username string }{
		{"a1", "alice"},
		{"a2", "bob"},
		{"a3", "alice"},
	} {
		err := decision.Retry(ctx, nil, func(ctx context.Context) error {
			return register(ctx, s, r.account, r.username)
		})
		switch {
		case errors.Is(err, errUsernameTaken):
			fmt.Printf("%s: %v\n", r.account, err)
		case err != nil:
			panic(err)
		default:
			fmt.Printf("%s: registered as %s\n", r.account, r.username)
		}
	}
	// Output:
	// a1: registered as alice
	// a2: registered as bob
	// a3: username taken: alice
}
