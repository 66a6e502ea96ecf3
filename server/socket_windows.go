//go:build windows

package server

import (
	"fmt"
	"net"
	"os"
)

// isSocket: a unix socket file on Windows is a reparse point that Lstat
// may report as irregular rather than as a socket.
func isSocket(fi os.FileInfo) bool {
	return fi.Mode()&(os.ModeSocket|os.ModeIrregular) != 0
}

// listenSocket binds path. Windows has no file mode to set: the store
// directory's ACL decides who may connect.
func listenSocket(path string) (net.Listener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("server: listen on %s: %w", path, err)
	}
	return &socketListener{UnixListener: l, path: path, fi: fi}, nil
}
