package main

import (
	"flag"
	"io"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The query flags make the items of a query in the order given: --type and
// --tag add to the current item, --or starts the next.
func TestQueryFlags(t *testing.T) {
	parse := func(args ...string) (dcb.Query, error) {
		var qf queryFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		qf.register(fs)
		if _, err := parseArgs(fs, args); err != nil {
			return dcb.Query{}, err
		}
		return qf.query()
	}
	item := func(types, tags []string) dcb.QueryItem { return dcb.QueryItem{Types: types, Tags: tags} }
	for _, c := range []struct {
		args []string
		want dcb.Query
	}{
		{nil, dcb.All()},
		{[]string{"DIR"}, dcb.All()},
		{[]string{"--type", "A", "--type", "B"}, dcb.Query{Items: []dcb.QueryItem{item([]string{"A", "B"}, nil)}}},
		{[]string{"--tag", "x", "DIR", "--type", "A", "--tag", "y"}, dcb.Query{Items: []dcb.QueryItem{item([]string{"A"}, []string{"x", "y"})}}},
		{[]string{"--type", "A", "--or", "--tag", "x", "--tag", "y", "--or", "--type", "B", "--tag", "z"},
			dcb.Query{Items: []dcb.QueryItem{item([]string{"A"}, nil), item(nil, []string{"x", "y"}), item([]string{"B"}, []string{"z"})}}},
		{[]string{"--tag", "a:b c/ü"}, dcb.Query{Items: []dcb.QueryItem{item(nil, []string{"a:b c/ü"})}}},
	} {
		got, err := parse(c.args...)
		require.NoError(t, err, "%q", c.args)
		assert.Equal(t, c.want, got, "%q", c.args)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--or"}, "--or must follow a --type or --tag"},
		{[]string{"--type", "A", "--or", "--or", "--tag", "x"}, "--or must follow a --type or --tag"},
		{[]string{"--type", "A", "--or"}, "--or must be followed by a --type or --tag"},
		{[]string{"--type", ""}, "a type is never empty"},
		{[]string{"--tag", ""}, "a tag is never empty"},
		{[]string{"--tag", "\xff"}, "not valid UTF-8"},
		{[]string{"--or=false", "--type", "A"}, "--or takes no value"},
	} {
		_, err := parse(c.args...)
		require.Error(t, err, "%q", c.args)
		assert.Contains(t, err.Error(), c.err, "%q", c.args)
	}
}
