package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/storedir"
)

// tokenEnv supplies --token when it is not given: a token on the command
// line is visible to every user in the process list.
const tokenEnv = "POSSUM_TOKEN"

// serveFlags are the flags of serve.
type serveFlags struct {
	listen, token   string
	tlsCert, tlsKey string
	insecureNoToken bool
	nats            natsFlags // with --nats, a node of a store on NATS (serve_nats.go)
}

func serveCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs.StringVar(&f.listen, "listen", "", "also serve over TCP on `ADDR` (host:port; :0 picks a port); off loopback, a --token is required")
	fs.StringVar(&f.token, "token", "", "require \"Authorization: Bearer `TOKEN`\" over TCP (or set $"+tokenEnv+")")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve TCP over TLS with the certificate (chain) in `FILE` (PEM), with --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert, in `FILE` (PEM)")
	fs.BoolVar(&f.insecureNoToken, "insecure-no-token", false, "serve TCP off loopback without a token: anyone who reaches the address can append")
	f.nats.define(fs, "serve a node of a store kept in a NATS JetStream stream, DIR its replica,")
	return func(args []string, stdout, stderr io.Writer) error {
		if err := f.nats.check(false); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if f.token == "" {
			f.token = os.Getenv(tokenEnv)
		}
		if f.listen == "" {
			switch {
			case f.token != "":
				return errors.New("--token guards TCP: give --listen too (the socket admits its owner only)")
			case f.tlsCert != "" || f.tlsKey != "":
				return errors.New("--tls-cert and --tls-key are for TCP: give --listen too")
			case f.insecureNoToken:
				return errors.New("--insecure-no-token is for TCP: give --listen too")
			}
		}
		return runServe(ctx, args[0], f, stdout, stderr)
	}
}

// runServe opens the store in dir and serves it on its unix socket, and on
// TCP at f.listen when given, until ctx ends; then it closes the store. It
// prints one line once it is serving (the address of each listener).
func runServe(ctx context.Context, dir string, f serveFlags, stdout, stderr io.Writer) error {
	// Refuse a path too long for the socket, an address that cannot be
	// listened on or may not be without a token, and TLS files that do
	// not load, before creating anything.
	if err := storedir.CheckSocketPath(storedir.SocketPath(dir)); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if f.tlsCert != "" || f.tlsKey != "" {
		if f.tlsCert == "" || f.tlsKey == "" {
			return errors.New("--tls-cert and --tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var tcp net.Listener
	if f.listen != "" {
		if f.token == "" {
			if err := checkLoopback(ctx, f.listen, f.insecureNoToken, stderr); err != nil {
				return err
			}
		}
		var err error
		if tcp, err = net.Listen("tcp", f.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer tcp.Close()
	}
	st, sock, what, err := openServed(ctx, dir, f.nats)
	if err != nil {
		return err
	}
	defer st.Close()
	line := fmt.Sprintf("possum serve: serving %s (head %d) on unix socket %s", what, st.Head(), sock.Addr())
	if tcp != nil {
		scheme := "http"
		if tlsConfig != nil {
			scheme = "https"
		}
		line += " and on " + scheme + "://" + tcp.Addr().String()
	}
	fmt.Fprintln(stdout, line)

	// Either listener failing stops both.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- server.New(st, nil).Serve(ctx, sock); cancel() })
	if tcp != nil {
		wg.Go(func() {
			errs <- server.New(st, &server.Options{Token: f.token, TLSConfig: tlsConfig}).Serve(ctx, tcp)
			cancel()
		})
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

// checkLoopback refuses to serve TCP at listen without a token unless the
// address is loopback only (127.0.0.0/8, ::1, localhost, or a name that
// resolves to those alone), or insecure says so. It warns either way.
func checkLoopback(ctx context.Context, listen string, insecure bool, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if loopbackOnly(ctx, host) {
		fmt.Fprintf(stderr, "possum serve: warning: %s serves without a token: any user of this machine can append (--token)\n", listen)
		return nil
	}
	if !insecure {
		return fmt.Errorf("--listen %s is reachable from other machines: give a --token (or $%s) that clients must send, or, if anyone who reaches it may append, --insecure-no-token", listen, tokenEnv)
	}
	fmt.Fprintf(stderr, "possum serve: warning: %s serves without a token (--insecure-no-token): anyone who reaches it can append\n", listen)
	return nil
}

// loopbackOnly reports whether host names loopback addresses only. ""
// (every interface) and a name that does not resolve do not.
func loopbackOnly(ctx context.Context, host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}
