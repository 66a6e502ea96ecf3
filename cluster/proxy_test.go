package cluster

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// proxy forwards TCP connections to a NATS server, and can lose a
// publish's answer on purpose: armed, it watches what clients send for a
// batch's commit message, forwards it (or drops it), and then freezes:
// nothing more passes either way, on any connection, and new connections
// are closed at once, until release closes the frozen ones and lets
// clients reconnect.
type proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	conns  []net.Conn
	armed  bool
	drop   bool          // armed: drop the commit instead of forwarding it
	frozen bool          // set once the commit was seen
	seen   chan struct{} // closed once the commit was seen
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{l: l, target: target}
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.release()
	})
	return p
}

func (p *proxy) url() string { return "nats://" + p.l.Addr().String() }

// arm makes the proxy lose the answer to the next batch commit a client
// sends: forwarded to the server (drop false) or not (drop true). The
// returned channel is closed once that happened and the proxy froze.
func (p *proxy) arm(drop bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.drop, p.seen = true, drop, make(chan struct{})
	return p.seen
}

// release closes every connection and lets clients connect again.
func (p *proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.frozen = nil, false
}

func (p *proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.frozen {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(c, s, true)
		go p.pipe(s, c, false)
	}
}

// commitMarker is what a batch's commit message carries, and no other.
var commitMarker = []byte("Nats-Batch-Commit: 1")

// pipe copies from src to dst; fromClient says src is the client.
func (p *proxy) pipe(src, dst net.Conn, fromClient bool) {
	defer dst.Close()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			chunk := buf[:k]
			p.mu.Lock()
			frozen := p.frozen
			if !frozen && fromClient && p.armed && bytes.Contains(chunk, commitMarker) {
				if !p.drop {
					_, _ = dst.Write(chunk)
				}
				p.armed, p.frozen, frozen = false, true, true
				close(p.seen)
			}
			p.mu.Unlock()
			if !frozen {
				if _, err := dst.Write(chunk); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
