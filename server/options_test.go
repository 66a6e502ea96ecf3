package server_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerOptionsValidate: every field of server.Options, at values it
// takes and values it refuses; Serve refuses to start with the latter,
// naming the field, and closes its listener.
func TestServerOptionsValidate(t *testing.T) {
	for _, o := range []server.Options{
		{}, {Token: "s3cret-token_1"}, {MaxBodyBytes: 1}, {BodyTimeout: time.Second}, {Heartbeat: server.MinHeartbeat},
		{Heartbeat: server.MaxHeartbeat}, {StreamWriteTimeout: time.Second}, {StreamBufferBytes: 1}, {StreamsBufferBytes: 1},
		{MaxConns: 1}, {TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}},
	} {
		assert.NoError(t, o.Validate(), "%+v", o)
	}
	for field, o := range map[string]server.Options{
		"MaxBodyBytes":       {MaxBodyBytes: -1},
		"BodyTimeout":        {BodyTimeout: -1},
		"Heartbeat":          {Heartbeat: time.Millisecond},
		"StreamWriteTimeout": {StreamWriteTimeout: -1},
		"StreamBufferBytes":  {StreamBufferBytes: -1},
		"StreamsBufferBytes": {StreamsBufferBytes: -1},
		"MaxConns":           {MaxConns: -1},
		"Token":              {Token: "two\nlines"},
		"TLSConfig":          {TLSConfig: &tls.Config{}},
	} {
		assert.ErrorContains(t, o.Validate(), field)
		st, _ := serveTCP(t, nil)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		err = server.New(st, &o).Serve(t.Context(), l)
		assert.ErrorContains(t, err, field, "Serve refuses it")
		_, err = l.Accept()
		assert.Error(t, err, "and closed its listener")
	}
}

// TestClientOptionsValidate: every field of client.Options, at values it
// takes and values it refuses; Dial refuses the latter, naming the field,
// before it connects.
func TestClientOptionsValidate(t *testing.T) {
	for _, o := range []client.Options{
		{}, {Token: "t"}, {Timeout: time.Second}, {Heartbeat: time.Second}, {TLSConfig: &tls.Config{}}, {MaxConns: 1},
	} {
		assert.NoError(t, o.Validate(), "%+v", o)
	}
	for field, o := range map[string]client.Options{
		"Timeout":   {Timeout: -1},
		"Heartbeat": {Heartbeat: -1},
		"MaxConns":  {MaxConns: -1},
		"Token":     {Token: " padded "},
	} {
		assert.ErrorContains(t, o.Validate(), field)
		_, err := client.DialOptions("http://127.0.0.1:1", &o)
		assert.ErrorContains(t, err, field)
	}
}
