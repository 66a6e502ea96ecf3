package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Embedded NATS servers for the tests: one server, or a cluster of three,
// every one on 127.0.0.1 with ports the OS picks, JetStream files in a
// temporary directory. Set POSSUM_CLUSTER_LOG to see the servers' logs.

// serverSpec says how to run one server. It is also what a child process
// running a server is given (see main_test.go), so it is all values.
type serverSpec struct {
	Name        string
	Dir         string // JetStream's store directory
	Port        int    // client port; -1: any
	ClusterPort int    // 0: not clustered
	Routes      []string
}

func (sp serverSpec) options() *server.Options {
	o := &server.Options{
		ServerName:         sp.Name,
		Host:               "127.0.0.1",
		Port:               sp.Port,
		NoSigs:             true,
		NoLog:              os.Getenv("POSSUM_CLUSTER_LOG") == "",
		Debug:              false,
		JetStream:          true,
		StoreDir:           sp.Dir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  8 << 30,
	}
	if sp.ClusterPort != 0 {
		o.Cluster = server.ClusterOpts{Name: "possum", Host: "127.0.0.1", Port: sp.ClusterPort}
		o.Routes = server.RoutesFromStr(strings.Join(sp.Routes, ","))
	}
	return o
}

// run starts the server described by sp and waits until it takes clients.
func (sp serverSpec) run() (*server.Server, error) {
	s, err := server.NewServer(sp.options())
	if err != nil {
		return nil, err
	}
	if os.Getenv("POSSUM_CLUSTER_LOG") != "" {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s did not start", sp.Name)
	}
	return s, nil
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago
// (the cluster's route ports must be known before its servers start).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// testServer is one embedded server: running (s set) or stopped.
type testServer struct {
	spec serverSpec
	s    *server.Server
}

func (ts *testServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ts.spec.Port) }

// testCluster is a set of servers a test runs and stops.
type testCluster struct {
	servers []*testServer
}

// url lists every server, for a client that fails over between them.
func (c *testCluster) url() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.url()
	}
	return strings.Join(urls, ",")
}

// stop shuts server i down (a clean shutdown).
func (c *testCluster) stop(i int) {
	if s := c.servers[i].s; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i].s = nil
	}
}

// start starts server i again, on its ports and files.
func (c *testCluster) start(t testing.TB, i int) {
	t.Helper()
	s, err := c.servers[i].spec.run()
	require.NoError(t, err)
	c.servers[i].s = s
}

func (c *testCluster) shutdown() {
	for i := range c.servers {
		c.stop(i)
	}
}

// newSingle runs one server (no cluster) until t ends.
func newSingle(t testing.TB) *testCluster {
	t.Helper()
	c, err := startSingle(t, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(c.shutdown)
	return c
}

func startSingle(t testing.TB, root string) (*testCluster, error) {
	ts := &testServer{spec: serverSpec{Name: "n1", Dir: root, Port: freePorts(t, 1)[0]}}
	var err error
	ts.s, err = ts.spec.run()
	return &testCluster{servers: []*testServer{ts}}, err
}

// clusterSpecs describes a cluster of n servers on fresh ports under root.
func clusterSpecs(t testing.TB, n int, root string) []serverSpec {
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	specs := make([]serverSpec, n)
	for i := range n {
		specs[i] = serverSpec{
			Name: fmt.Sprintf("n%d", i+1), Dir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
			Port: ports[i], ClusterPort: ports[n+i], Routes: routes,
		}
	}
	return specs
}

// newCluster runs a cluster of three servers until t ends, once it can
// hold an R3 stream.
func newCluster(t testing.TB) *testCluster {
	t.Helper()
	c, err := startCluster(t, t.TempDir())
	t.Cleanup(c.shutdown)
	require.NoError(t, err)
	return c
}

func startCluster(t testing.TB, root string) (*testCluster, error) {
	c := &testCluster{}
	for _, sp := range clusterSpecs(t, 3, root) {
		c.servers = append(c.servers, &testServer{spec: sp})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.servers))
	for i, ts := range c.servers {
		wg.Go(func() { ts.s, errs[i] = ts.spec.run() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return c, err
		}
	}
	return c, waitR3(c.url())
}

// waitR3 waits until the cluster at url can create an R3 stream.
func waitR3(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe.>"}, Replicas: 3, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "probe")
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster at %s cannot hold an R3 stream: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's readiness, not synchronizing with the test's own work
	}
}

// newStreamName hands each test a stream of its own on a shared server.
func newStreamName() string { return fmt.Sprintf("S%d", streamSeq.Add(1)) }

var streamSeq atomic.Int64

// shared holds the servers the tests share (a cluster takes seconds to
// start); TestMain shuts them down and removes sharedRoot.
var (
	shared struct {
		mu      sync.Mutex
		single  *testCluster
		cluster *testCluster
	}
	sharedRoot string
)

// sharedSingle returns the URL of the single server the tests share.
func sharedSingle(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.single == nil {
		c, err := startSingle(t, filepath.Join(sharedRoot, "single"))
		require.NoError(t, err)
		shared.single = c
	}
	return shared.single.url()
}

// sharedCluster returns the URL of the three-server cluster the tests
// share.
func sharedCluster(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil {
		c, err := startCluster(t, filepath.Join(sharedRoot, "cluster"))
		if err != nil {
			c.shutdown()
		}
		require.NoError(t, err)
		shared.cluster = c
	}
	return shared.cluster.url()
}

func shutdownShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, c := range []*testCluster{shared.single, shared.cluster} {
		if c != nil {
			c.shutdown()
		}
	}
}
