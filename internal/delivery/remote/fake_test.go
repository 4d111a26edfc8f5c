package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/smtp"
	"postern/internal/testcert"
	"postern/internal/testkit"
)

// fakeMsg is a message a fakeServer received.
type fakeMsg struct {
	From  string
	Mail  string // the MAIL command line
	Rcpts []string
	Data  []byte   // as received, dot-stuffing removed, CRLF kept
	Raw   []byte   // as received on the wire, before un-stuffing
	BDAT  []string // the BDAT commands that carried it; none with DATA
}

// fakeServer is a scriptable SMTP server on a 127.0.0.x address.
type fakeServer struct {
	t    testing.TB
	ln   net.Listener
	Addr string

	// Script, set before the first connection.
	Greeting    string            // default "220 fake ESMTP"
	Ext         []string          // EHLO extension lines
	TLS         *tls.Config       // for STARTTLS or ImplicitTLS
	ImplicitTLS bool              // TLS from the first byte
	Inject      bool              // "250 injected" right after the 220 to STARTTLS
	Users       map[string]string // AUTH credentials
	// Reply overrides the reply to a command (the verb upper-cased and
	// its argument, or "." for the end of DATA): "" means the default,
	// "HANG" never answers, "DROP" closes the connection; "DROPDATA" at
	// DATA answers 354, reads some data and closes.
	Reply func(cmd string) string

	mu      sync.Mutex
	conns   int
	active  int
	maxAct  int
	tlsN    int
	resumed int
	rsets   int
	quits   int
	helo    []string
	msgs    []fakeMsg
	batches []int // at each MAIL: commands already buffered behind it, plus one
	auths   []string
	done    chan struct{}
	wg      sync.WaitGroup
}

// newFake starts a fakeServer on ip (e.g. "127.0.0.2") and a free port.
func newFake(t testing.TB, ip string, setup func(*fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, Addr: ln.Addr().String(), Greeting: "220 fake ESMTP", done: make(chan struct{})}
	if setup != nil {
		setup(s)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) serve() {
	defer s.wg.Done()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.active++
		s.maxAct = max(s.maxAct, s.active)
		s.mu.Unlock()
		conns = append(conns, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(c)
			s.mu.Lock()
			s.active--
			s.mu.Unlock()
		}()
	}
}

// stats returns a snapshot under the lock.
func (s *fakeServer) stats() (conns, rsets, quits int, msgs []fakeMsg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.rsets, s.quits, append([]fakeMsg(nil), s.msgs...)
}

func (s *fakeServer) session(c net.Conn) {
	// Close on test end so that a hanging session ends.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.done:
			c.Close()
		case <-stop:
		}
	}()
	if s.ImplicitTLS {
		tc := tls.Server(c, s.TLS)
		if tc.Handshake() != nil {
			return
		}
		s.noteTLS(tc)
		c = tc
	}
	br := bufio.NewReader(c)
	w := func(str string) { io.WriteString(c, str) }
	override := func(cmd string) (string, bool) {
		if s.Reply == nil {
			return "", false
		}
		r := s.Reply(cmd)
		switch r {
		case "":
			return "", false
		case "HANG":
			<-s.done
			return "", true
		case "DROP":
			c.Close()
			return "", true
		}
		return r, false
	}
	if r, end := override("GREETING"); end {
		return
	} else if r != "" {
		w(r + "\r\n")
		if r[0] != '2' {
			return
		}
	} else {
		w(s.Greeting + "\r\n")
	}
	var cur *fakeMsg
	for {
		line, verb, arg, err := testkit.ReadCommand(br)
		if err != nil {
			return
		}
		if verb == "MAIL" {
			buf, _ := br.Peek(br.Buffered())
			s.mu.Lock()
			s.batches = append(s.batches, 1+bytes.Count(buf, []byte("\n")))
			s.mu.Unlock()
		}
		r, end := override(verb + " " + arg)
		if end {
			return
		}
		if r == "DROPDATA" {
			w("354 go on\r\n")
			br.ReadString('\n')
			return
		}
		if r != "" {
			w(r + "\r\n")
			if verb == "DATA" && r[0] == '3' {
				s.readData(br, cur, c)
			}
			if verb == "MAIL" && r[0] == '2' {
				cur = &fakeMsg{Mail: line}
			}
			if verb == "RCPT" && r[0] == '2' && cur != nil {
				cur.Rcpts = append(cur.Rcpts, arg)
			}
			continue
		}
		switch verb {
		case "EHLO":
			s.mu.Lock()
			s.helo = append(s.helo, line)
			s.mu.Unlock()
			out := "250-fake greets " + arg + "\r\n"
			for _, e := range s.Ext {
				out += "250-" + e + "\r\n"
			}
			w(out + "250 HELP\r\n")
		case "HELO":
			w("250 fake\r\n")
		case "STARTTLS":
			if s.Inject {
				w("220 go ahead\r\n250 injected\r\n")
			} else {
				w("220 go ahead\r\n")
			}
			tc := tls.Server(c, s.TLS)
			if tc.Handshake() != nil {
				return
			}
			s.noteTLS(tc)
			c = tc
			br = bufio.NewReader(c)
		case "AUTH":
			s.auth(c, br, arg)
		case "MAIL":
			cur = &fakeMsg{Mail: line, From: arg}
			w("250 2.1.0 ok\r\n")
		case "RCPT":
			if cur != nil {
				cur.Rcpts = append(cur.Rcpts, arg)
			}
			w("250 2.1.5 ok\r\n")
		case "DATA":
			w("354 go on\r\n")
			s.readData(br, cur, c)
		case "BDAT":
			if !s.readChunk(br, &cur, line, c) {
				return
			}
		case "RSET":
			cur = nil
			s.mu.Lock()
			s.rsets++
			s.mu.Unlock()
			w("250 2.0.0 ok\r\n")
		case "QUIT":
			s.mu.Lock()
			s.quits++
			s.mu.Unlock()
			w("221 2.0.0 bye\r\n")
			return
		case "NOOP":
			w("250 ok\r\n")
		default:
			w("502 5.5.1 unknown\r\n")
		}
	}
}

// readData reads DATA content to the final dot and replies.
func (s *fakeServer) readData(br *bufio.Reader, cur *fakeMsg, c net.Conn) {
	raw, data, ok := testkit.ReadDotData(br)
	if !ok {
		return
	}
	if cur == nil {
		cur = &fakeMsg{}
	}
	m := *cur
	m.Data, m.Raw = data, raw
	s.finish(m, c)
}

// readChunk reads the chunk of the BDAT command line (RFC 3030) into
// *cur and replies; at LAST it ends the message as the final dot does.
// It reports false when the connection is to end.
func (s *fakeServer) readChunk(br *bufio.Reader, cur **fakeMsg, line string, c net.Conn) bool {
	_, arg, _ := strings.Cut(line, " ")
	size, last, err := smtp.ParseBDAT(arg)
	if err != nil {
		io.WriteString(c, "501 5.5.4 bad BDAT\r\n")
		return false
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(br, b); err != nil {
		return false
	}
	if *cur == nil {
		*cur = &fakeMsg{}
	}
	m := *cur
	m.Data, m.Raw = append(m.Data, b...), append(m.Raw, b...)
	m.BDAT = append(m.BDAT, line)
	if !last {
		io.WriteString(c, "250 2.0.0 chunk\r\n")
		return true
	}
	*cur = nil
	s.finish(*m, c)
	return true
}

// finish ends message m: the reply to its end (the script's for "."),
// and m kept when it is accepted.
func (s *fakeServer) finish(m fakeMsg, c net.Conn) {
	r := ""
	if s.Reply != nil {
		r = s.Reply(".")
	}
	if r == "HANG" {
		<-s.done
		return
	}
	if r == "" || r[0] == '2' {
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}
	if r == "" {
		r = "250 2.0.0 queued"
	}
	io.WriteString(c, r+"\r\n")
}

func (s *fakeServer) noteTLS(tc *tls.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tlsN++
	if tc.ConnectionState().DidResume {
		s.resumed++
	}
}

// auth answers AUTH PLAIN (with an initial response) and AUTH LOGIN.
func (s *fakeServer) auth(c net.Conn, br *bufio.Reader, arg string) {
	mech, ir, _ := strings.Cut(arg, " ")
	readLine := func() string {
		l, _ := br.ReadString('\n')
		return strings.TrimRight(l, "\r\n")
	}
	dec := func(x string) string {
		b, _ := base64.StdEncoding.DecodeString(x)
		return string(b)
	}
	var user, pass string
	switch strings.ToUpper(mech) {
	case "PLAIN":
		parts := strings.Split(dec(ir), "\x00")
		if len(parts) == 3 {
			user, pass = parts[1], parts[2]
		}
	case "LOGIN":
		io.WriteString(c, "334 VXNlcm5hbWU6\r\n")
		user = dec(readLine())
		io.WriteString(c, "334 UGFzc3dvcmQ6\r\n")
		pass = dec(readLine())
	}
	s.mu.Lock()
	s.auths = append(s.auths, strings.ToUpper(mech)+" "+user)
	s.mu.Unlock()
	if p, ok := s.Users[user]; ok && p == pass {
		io.WriteString(c, "235 2.7.0 ok\r\n")
		return
	}
	io.WriteString(c, "535 5.7.8 bad credentials\r\n")
}

// testCert makes a self-signed certificate (also a CA) for names.
func testCert(names ...string) (tls.Certificate, *x509.Certificate) {
	c, _ := testcert.SelfSigned(testcert.Spec{DNSNames: names})
	return c, c.Leaf
}

// serverTLS returns a server TLS config with cert.
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// mapDialer dials the fake server registered for an address ("ip:25" or a
// smarthost's "name:port") and counts dials.
type mapDialer struct {
	mu    sync.Mutex
	m     map[string]string
	dials int
	conns []net.Conn // every connection dialed
}

func (d *mapDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	to, ok := d.m[addr]
	d.dials++
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("mapDialer: no server for %s: %w", addr, errors.ErrUnsupported)
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, to)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

// fixedPlanner returns one Plan for every domain.
type fixedPlanner struct {
	plan *policy.Plan
	err  error
}

func (p fixedPlanner) Plan(ctx context.Context, req policy.Request) (*policy.Plan, error) {
	return p.plan, p.err
}

// mx is a Host named name on the address of the 127.0.0.x of server s.
func mx(name string, mode policy.Mode, servers ...*fakeServer) policy.Host {
	h := policy.Host{Name: name, Mode: mode, Source: policy.SourceNone}
	for _, s := range servers {
		ap := netip.MustParseAddrPort(s.Addr)
		h.Addrs = append(h.Addrs, ap.Addr())
	}
	return h
}

// fixture is a Deliverer wired to fake servers through a mapDialer.
type fixture struct {
	d      *Deliverer
	dialer *mapDialer
	roots  *x509.CertPool
	logs   *testkit.SyncBuffer
}

// newFixture returns a Deliverer whose Planner returns hosts, where each
// "ip:25" dials the fake server on that ip.
func newFixture(t *testing.T, hosts []policy.Host, servers ...*fakeServer) *fixture {
	t.Helper()
	dl := &mapDialer{m: map[string]string{}}
	for _, s := range servers {
		ap := netip.MustParseAddrPort(s.Addr)
		dl.m[net.JoinHostPort(ap.Addr().String(), "25")] = s.Addr
	}
	f := &fixture{dialer: dl, roots: x509.NewCertPool(), logs: &testkit.SyncBuffer{}}
	f.d = &Deliverer{
		Hostname: "out.postern.test",
		Planner:  fixedPlanner{plan: &policy.Plan{Domain: "example.test", Hosts: hosts}},
		Dialer:   dl,
		TLSClientConfig: &tls.Config{
			RootCAs: f.roots,
		},
		Timeouts: Timeouts{Connect: 2 * time.Second, Greeting: 2 * time.Second, Command: 2 * time.Second,
			DataStart: 2 * time.Second, DataBlock: 2 * time.Second, DataEnd: 2 * time.Second},
		Pool:   PoolOptions{MaxIdlePerHost: 4, IdleTimeout: 30 * time.Second, MaxMessagesPerConn: 100, MaxConnsPerHost: 10},
		Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	t.Cleanup(f.d.Close)
	return f
}

// msg returns a test message to rcpts.
func testMsg(rcpts ...string) *Message {
	return &Message{ID: "Q1", From: "a@src.test", Rcpts: rcpts,
		Data: &smtp.Message{Header: []byte("Subject: hi\r\n\r\nhello\r\n.dot line\r\n..two\r\n")}}
}
