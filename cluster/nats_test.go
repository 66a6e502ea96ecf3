package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/internal/testkit/child"
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
	SyncAlways  bool // fsync every write (sync_interval: always)
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
		SyncAlways:         sp.SyncAlways,
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

// testServer is one server: running in this process (s set), in a child
// process (cmd set), or stopped.
type testServer struct {
	spec  serverSpec
	child bool // runs in a child process, to be killed with SIGKILL
	s     *server.Server
	cmd   *exec.Cmd
}

func (ts *testServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ts.spec.Port) }

// start runs the server, in this process or in a child.
func (ts *testServer) start() error {
	var err error
	if ts.child {
		ts.cmd, err = startServerChild(ts.spec)
	} else {
		ts.s, err = ts.spec.run()
	}
	return err
}

// stop shuts an in-process server down cleanly, and kills a child with
// SIGKILL.
func (ts *testServer) stop() {
	if ts.s != nil {
		ts.s.Shutdown()
		ts.s.WaitForShutdown()
		ts.s = nil
	}
	if ts.cmd != nil {
		_ = ts.cmd.Process.Kill()
		_ = ts.cmd.Wait()
		ts.cmd = nil
	}
}

// testCluster is a set of servers the tests run and stop.
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

// stop stops server i (see testServer.stop).
func (c *testCluster) stop(i int) { c.servers[i].stop() }

// start starts server i again, on its ports and files.
func (c *testCluster) start(t testing.TB, i int) {
	t.Helper()
	require.NoError(t, c.servers[i].start())
}

func (c *testCluster) shutdown() {
	for i := range c.servers {
		c.stop(i)
	}
}

func startSingle(t testing.TB, root string) (*testCluster, error) {
	ts := &testServer{spec: serverSpec{Name: "n1", Dir: root, Port: freePorts(t, 1)[0]}}
	return &testCluster{servers: []*testServer{ts}}, ts.start()
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

// childServer is the cluster's server that runs in a child process.
const childServer = 2

// startCluster runs a cluster of three servers, the third in a child
// process (so that a test can kill it with SIGKILL), and waits until it
// can hold an R3 stream. The caller shuts it down, also on an error.
func startCluster(t testing.TB, root string) (*testCluster, error) {
	c := &testCluster{}
	for i, sp := range clusterSpecs(t, 3, root) {
		c.servers = append(c.servers, &testServer{spec: sp, child: i == childServer})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.servers))
	for i, ts := range c.servers {
		wg.Go(func() { errs[i] = ts.start() })
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

// serverChildEnv asks for a child process running a NATS server: the
// value is its serverSpec as JSON.
const serverChildEnv = "POSSUM_CLUSTER_TEST_SERVER"

func init() { child.Register(serverChildEnv, runServerChild) }

// runServerChild runs the server of spec until the process is killed.
func runServerChild(spec string) {
	var sp serverSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "server child:", err)
		os.Exit(2)
	}
	s, err := sp.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server child:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	s.WaitForShutdown()
}

// startServerChild runs the server of sp in a child process and waits
// until it takes clients.
func startServerChild(sp serverSpec) (*exec.Cmd, error) {
	b, err := json.Marshal(sp)
	if err != nil {
		return nil, err
	}
	cmd := child.Command(serverChildEnv, string(b))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the server child %s did not start (%q, %v)", sp.Name, line, err)
	}
	return cmd, nil
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

// sharedServers returns the cluster the tests share, for a test that
// stops and starts its servers: it must leave them all running.
func sharedServers(t testing.TB) *testCluster {
	sharedCluster(t)
	return shared.cluster
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
