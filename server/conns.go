package server

import (
	"net"
	"sync"
)

// DefaultMaxConns returns the connections a Server holds open at once when
// Options.MaxConns is 0: a quarter of this process's limit on open files
// (RLIMIT_NOFILE) where there is one, within 64 and 65536; 1024 where
// there is none (Windows). A program serving a store on its socket and on
// TCP (as possum serve does) runs two servers, each with its own bound, so
// that clients over TCP cannot take the socket's connections, and half the
// files stay for the store itself (its log, its projector's files).
func DefaultMaxConns() int {
	limit, ok := openFileLimit()
	if !ok {
		return 1024
	}
	return int(min(max(limit/4, 64), 65536))
}

// limitListener accepts a connection only while fewer than its bound are
// open: a connection beyond it waits in the listener's queue (the
// kernel's backlog), which costs this process no file, until one closes.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one sent per open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
