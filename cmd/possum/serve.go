package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
)

// tokenEnv supplies --token when it is not given: a token on the command
// line is visible to every user in the process list.
const tokenEnv = "POSSUM_TOKEN"

func serveCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	listen := fs.String("listen", "", "also serve over TCP on `ADDR` (host:port; :0 picks a port)")
	token := fs.String("token", "", "require \"Authorization: Bearer `TOKEN`\" over TCP (or set $"+tokenEnv+")")
	return func(args []string, stdout, stderr io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		t := *token
		if t == "" {
			t = os.Getenv(tokenEnv)
		}
		if t != "" && *listen == "" {
			return errors.New("--token guards TCP: give --listen too (the socket admits its owner only)")
		}
		return runServe(ctx, args[0], *listen, t, stdout, stderr)
	}
}

// runServe opens the store in dir and serves it on its unix socket, and on
// TCP at listen when given, until ctx ends; then it closes the store. It
// prints one line once it is serving (the address of each listener).
func runServe(ctx context.Context, dir, listen, token string, stdout, stderr io.Writer) error {
	// Refuse a path too long for the socket, or an address that cannot be
	// listened on, before creating anything.
	if err := server.CheckSocketPath(server.SocketPath(dir)); err != nil {
		return err
	}
	var tcp net.Listener
	if listen != "" {
		var err error
		if tcp, err = net.Listen("tcp", listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer tcp.Close()
		if token == "" {
			fmt.Fprintf(stderr, "possum serve: warning: %s serves without a token: anyone who reaches it can append (--token)\n", tcp.Addr())
		}
	}
	st, err := store.Open(dir, nil)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: another process holds its lock (%s): is the store served already? its socket: %s",
			err, filepath.Join(dir, "LOCK"), server.SocketPath(dir))
	}
	if err != nil {
		return err
	}
	defer st.Close()
	sock, err := server.ListenSocket(st)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("possum serve: serving %s (head %d) on unix socket %s", dir, st.Head(), sock.Addr())
	if tcp != nil {
		line += " and on http://" + tcp.Addr().String()
	}
	fmt.Fprintln(stdout, line)

	// Either listener failing stops both.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- server.New(st, nil).Serve(ctx, sock); cancel() })
	if tcp != nil {
		wg.Go(func() { errs <- server.New(st, &server.Options{Token: token}).Serve(ctx, tcp); cancel() })
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	all = append(all, st.Close())
	return errors.Join(all...)
}
