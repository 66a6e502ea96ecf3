package server

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// ListenSocket listens on the unix socket of s, storedir.SocketPath(s.Dir()), with
// file mode 0600: only the user who owns the server can connect (on
// Windows, the directory's ACL decides). s must be open: holding it open is
// what makes this process the store's only writer, so a socket file left
// there by a server that was killed is stale, and is replaced. Closing the
// listener removes the socket file.
func ListenSocket(s *store.Store) (net.Listener, error) {
	if err := s.WaitProjected(context.Background(), 0); err != nil {
		return nil, fmt.Errorf("server: listen on the socket of %s: %w", s.Dir(), err)
	}
	path := storedir.SocketPath(s.Dir())
	if err := storedir.CheckSocketPath(path); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	return listenSocket(path)
}

// ServeSocket serves s on its unix socket (see ListenSocket) until ctx
// ends, with opts (nil: the defaults).
func ServeSocket(ctx context.Context, s *store.Store, opts *Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	l, err := ListenSocket(s)
	if err != nil {
		return err
	}
	return New(s, opts).Serve(ctx, l)
}

// removeStale removes a socket file at path. Anything else there is
// refused.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if !isSocket(fi) {
		return fmt.Errorf("server: %s exists and is not a socket (%s); possum serves the store there: move it away", path, fi.Mode())
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("server: removing the stale socket: %w", err)
	}
	return nil
}

// socketListener removes its socket file when closed, if the file is still
// its own.
type socketListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

// Addr is the socket's path, not the name it was bound to.
func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.fi) {
		_ = os.Remove(l.path)
	}
	return err
}
