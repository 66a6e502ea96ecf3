// Package server serves an open store to other processes over HTTP: on a
// unix socket in the store's directory (possum.sock), found by local
// processes with no configuration, and on TCP when asked, behind an
// optional bearer token. The Go client is package client; the API is
// described in docs/openapi.yaml and is the one the DCB community test
// suite's default HTTP adapter speaks:
//
//	GET  /read?query=<JSON>&options=<JSON>   a JSON array of events
//	POST /read  {"query":...,"options":...}  the same, for a query too large for a URL
//	POST /append                             {"events":[...],"condition":{...}}
//	POST /appends                            {"appends":[<append>...]}: independent appends, one result each
//	GET  /stream?query=..&from=..            NDJSON, one event per line; follow=true&after=N to follow
//	POST /stream {"query":...,"follow":...}  the same, its parameters in the body
//	GET  /head                               {"head":N}
//
// Requests are read strictly: a query string that does not parse, an
// unknown or repeated parameter, an unknown JSON field, or a string that is
// not UTF-8 is refused (400), never ignored or changed.
//
// The server owns nothing of the store: it calls the Append, Read,
// Subscribe and Head an embedding program calls, so every guarantee of
// package store holds for remote callers too. What it adds is what a
// network adds: limits on request size and time, on the connections held
// open and on the memory streams hold for slow clients, a heartbeat on idle
// streams, an error code on every failure that names the store's or dcb's
// sentinel, and access control (the socket's file mode, 0600: only the
// user who serves the store connects; over TCP, the token, and TLS when
// Options.TLSConfig is set).
package server
