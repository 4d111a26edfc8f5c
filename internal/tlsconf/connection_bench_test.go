package tlsconf

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkConnectionFloor measures what a one-message session costs the
// server beside the handshake floor (BenchmarkHandshakeFloor) when
// nothing is written to disk: a real loopback TCP connection accepted,
// an SMTP-shaped dialogue (greeting, EHLO, AUTH, MAIL, RCPT, DATA with a
// 10 KiB body, QUIT: eight replies, each one write, as a client that does
// not pipeline gets them) and the close, in plain TCP (tcp) and with TLS
// from the first byte resumed with X25519MLKEM768 (implicit-resumed),
// the load generator's implicit scenario. The server's side runs on a
// goroutine locked to its thread; server-cpu-µs/conn is that thread's
// CPU time (CLOCK_THREAD_CPUTIME_ID), kernel time included: on loopback
// the kernel's receive work for what a side sends runs in the sender's
// context, so it counts for the side that sends, as it does for the
// live server. The Go runtime's other threads (netpoller, scheduler
// hand-offs) are left out. Run:
//
//	go test -run '^$' -bench ConnectionFloor -benchtime 2000x -count 6 ./internal/tlsconf/
func BenchmarkConnectionFloor(b *testing.B) {
	srv, ca := floorServerConfig(b)
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\r\n"), 160) // 10,560 octets
	for _, mode := range []string{"tcp", "implicit-resumed"} {
		b.Run(mode, func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var cli *tls.Config
			if mode != "tcp" {
				cli = &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com",
					CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
				floorSession(b, l, srv, cli, body, false) // the first ticket
			}
			var server time.Duration
			for b.Loop() {
				server += floorSession(b, l, srv, cli, body, cli != nil)
			}
			b.ReportMetric(float64(server.Microseconds())/float64(b.N), "server-cpu-µs/conn")
		})
	}
}

// floorReplies are the server's replies of floorSession, in order: the
// greeting, then one for each client line of floorCommands.
var floorReplies = []string{
	"220 mail.example.com ESMTP\r\n",
	"250-mail.example.com\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SMTPUTF8\r\n",
	"235 2.7.0 authenticated\r\n",
	"250 2.1.0 ok\r\n",
	"250 2.1.5 ok\r\n",
	"354 go ahead\r\n",
	"250 2.0.0 queued as 0123456789\r\n",
	"221 2.0.0 bye\r\n",
}

var floorCommands = []string{"EHLO client.example.com\r\n", "AUTH PLAIN AGJlbmNoAGJlbmNocGFzcw==\r\n",
	"MAIL FROM:<bench@example.com>\r\n", "RCPT TO:<bench@example.com>\r\n", "DATA\r\n", "", "QUIT\r\n"}

// floorSession runs one session (client in this goroutine, server on a
// locked thread) and returns the server thread's CPU time, from before
// its accept to after its close. cli nil means plain TCP; resumed asks
// for a resumed TLS session.
func floorSession(b *testing.B, l net.Listener, srv, cli *tls.Config, body []byte, resumed bool) time.Duration {
	done := make(chan error, 1)
	var cpu time.Duration
	// A client that cannot connect leaves Accept to fail, not to hang.
	l.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := threadCPU()
		c, err := l.Accept()
		if err == nil {
			err = floorServe(c, srv, cli != nil)
		}
		cpu = threadCPU() - start
		done <- err
	}()
	var c net.Conn
	var err error
	if cli != nil {
		c, err = tls.Dial("tcp", l.Addr().String(), cli)
	} else {
		c, err = net.Dial("tcp", l.Addr().String())
	}
	if err == nil {
		err = floorClient(c, body)
		c.Close()
	}
	if serr := <-done; err != nil || serr != nil {
		b.Fatalf("session: client %v, server %v", err, serr)
	}
	if resumed && !c.(*tls.Conn).ConnectionState().DidResume {
		b.Fatal("the TLS session was not resumed")
	}
	return cpu
}

// floorServe is the server's side: one write a reply, the body read up
// to its final dot.
func floorServe(c net.Conn, srv *tls.Config, useTLS bool) error {
	defer c.Close()
	if useTLS {
		tc := tls.Server(c, srv)
		if err := tc.Handshake(); err != nil {
			return err
		}
		c = tc
	}
	r := bufio.NewReader(c)
	for i, reply := range floorReplies {
		if i > 0 {
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if i != 6 || string(line) == ".\r\n" { // the body ends at its dot
					break
				}
			}
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return err
		}
	}
	return nil
}

// floorClient is the client's side, without pipelining.
func floorClient(c net.Conn, body []byte) error {
	r := bufio.NewReader(c)
	for i, reply := range floorReplies {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if len(line) < 4 || line[:3] != reply[:3] {
				return fmt.Errorf("got %q, want %q", line, reply)
			}
			if line[3] == ' ' {
				break
			}
		}
		if i < len(floorCommands) {
			cmd := floorCommands[i]
			if i == 5 {
				cmd = string(body) + ".\r\n"
			}
			if _, err := io.WriteString(c, cmd); err != nil {
				return err
			}
		}
	}
	return nil
}
