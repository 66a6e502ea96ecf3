package server_test

import (
	"net/http"
	"testing"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testcert"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLS: a server with a TLS configuration speaks HTTPS; the client
// that trusts its certificate (Options.TLSConfig) appends, reads and
// subscribes through it, and one that does not, or speaks plain HTTP,
// gets nowhere.
func TestTLS(t *testing.T) {
	cert := testcert.New(t)
	_, addr := serveTCP(t, &server.Options{Token: "s3cret", TLSConfig: cert.Server(t)})
	ctx := t.Context()
	url := "https://" + addr

	_, err := client.DialURL(url, "s3cret")
	require.Error(t, err, "the system's roots do not vouch for the test's certificate")
	assert.Contains(t, err.Error(), "certificate")
	_, err = client.DialURL("http://"+addr, "s3cret")
	require.Error(t, err, "plain HTTP to a TLS server")

	c, err := client.DialOptions(url, &client.Options{Token: "s3cret", TLSConfig: cert.Client()})
	require.NoError(t, err)
	defer c.Close()
	pos, err := c.Append(ctx, []dcb.Event{{Type: "Secret", Tags: []string{"t"}}}, nil)
	require.NoError(t, err)
	evs, err := collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "Secret", evs[0].Type)
	for e, err := range c.Subscribe(ctx, dcb.All(), 0) {
		require.NoError(t, err)
		assert.Equal(t, pos, e.Position)
		break
	}

	// Over TLS, the token is still required.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cert.Client()}}
	resp, err := hc.Get(url + "/head")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
