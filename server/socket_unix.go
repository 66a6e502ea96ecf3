//go:build !windows

package server

import (
	"fmt"
	"net"
	"os"

	"github.com/possumstore/possum/storedir"
)

func isSocket(fi os.FileInfo) bool { return fi.Mode()&os.ModeSocket != 0 }

// listenSocket binds a socket beside path, makes it 0600 and renames it to
// path: the socket is never reachable under its name with a looser mode
// (the umask decides the mode a bind creates).
func listenSocket(path string) (net.Listener, error) {
	tmp := path + ".new"
	if err := storedir.CheckSocketPath(tmp); err != nil {
		return nil, err
	}
	_ = os.Remove(tmp) // a leftover of a server killed while listening
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("server: listen on %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: l, path: path, fi: fi}, nil
}
