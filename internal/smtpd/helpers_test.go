package smtpd

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
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/sasl"
	"postern/internal/smtp"
	"postern/internal/testcert"
	"postern/internal/testkit"
)

const testHost = "mx.example.org"

// testCert is a self-signed ECDSA P-256 certificate for testHost and
// 127.0.0.1, made once per test binary.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	return testcert.SelfSigned(testcert.Spec{DNSNames: []string{testHost}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
})

func serverTLSConfig() *tls.Config {
	cert, _ := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func clientTLSConfig() *tls.Config {
	_, pool := testCert()
	return &tls.Config{RootCAs: pool, ServerName: testHost}
}

// testDir is an in-memory Directory. Local domains: example.org and
// testHost. "dirfail@..." makes every call fail.
type testDir struct {
	mu     sync.Mutex
	users  map[string]bool     // existing local addresses
	sendAs map[string][]string // user -> addresses
}

func newTestDir() *testDir {
	return &testDir{
		users: map[string]bool{
			"bob@example.org":        true,
			"carol@example.org":      true,
			"postmaster@example.org": true,
			"alice@example.org":      true,
		},
		sendAs: map[string][]string{
			"alice": {"alice@example.org", "alias@example.org"},
		},
	}
}

var errDir = errors.New("directory down")

func (d *testDir) IsLocalDomain(domain string) bool {
	return domain == "example.org" || domain == testHost
}

func (d *testDir) RecipientExists(ctx context.Context, addr string) (bool, error) {
	if strings.HasPrefix(addr, "dirfail@") {
		return false, errDir
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.users[addr], nil
}

func (d *testDir) MaySendAs(ctx context.Context, user, addr string) (bool, error) {
	if strings.HasPrefix(addr, "dirfail@") {
		return false, errDir
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Contains(d.sendAs[user], addr), nil
}

func (d *testDir) addUser(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[addr] = true
}

// spooled is one message the test spooler took.
type spooled struct {
	env    smtp.Envelope
	data   []byte
	inFile bool // the body was in a file from CreateFile
}

// testSpool is a Spooler that keeps the messages in memory; CreateFile
// makes temporary files, removed on Close.
type testSpool struct {
	mu         sync.Mutex
	msgs       []spooled
	fail       error
	createFail error         // CreateFile's error
	block      chan struct{} // when set, Spool waits for it to close (or ctx)
	blocked    int           // PutMessage calls that waited on block
	files      int           // files created
	open       int           // files not closed yet
}

// testFile is a testSpool's file: a temporary file removed on Close.
type testFile struct {
	*os.File
	s *testSpool
}

func (f *testFile) Close() error {
	f.s.mu.Lock()
	f.s.open--
	f.s.mu.Unlock()
	err := f.File.Close()
	os.Remove(f.Name())
	return err
}

func (s *testSpool) CreateFile(id string) (smtp.SpoolFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createFail != nil {
		return nil, s.createFail
	}
	f, err := os.CreateTemp("", "postern-smtpd-"+id+"-")
	if err != nil {
		return nil, err
	}
	s.files++
	s.open++
	return &testFile{File: f, s: s}, nil
}

// openFiles returns how many files are not closed yet.
func (s *testSpool) openFiles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

func (s *testSpool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	s.mu.Lock()
	block, fail := s.block, s.fail
	if block != nil {
		s.blocked++
	}
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	data, err := io.ReadAll(msg.Reader())
	if err != nil {
		return err
	}
	_, _, inFile := msg.Body.File()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, spooled{env: *env, data: data, inFile: inFile})
	return nil
}

// waitBlocked waits until a PutMessage waits on block.
func (s *testSpool) waitBlocked(t testing.TB) {
	t.Helper()
	testkit.WaitFor(t, "a message waiting to be spooled", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.blocked > 0
	})
}

func (s *testSpool) messages() []spooled {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// testAuth offers PLAIN and LOGIN, checking alice/secret. User "temp"
// gets ErrTemporary.
type testAuth struct{}

func (testAuth) Mechanisms(cs *tls.ConnectionState) []string { return []string{"PLAIN", "LOGIN"} }

func (testAuth) Start(ctx context.Context, mech string, cs *tls.ConnectionState) (sasl.Server, bool) {
	switch mech {
	case "PLAIN":
		return &plainServer{}, true
	case "LOGIN":
		return &loginServer{}, true
	}
	return nil, false
}

const testPassword = "s3cr3t-pa55"

func checkPassword(user, pass string) error {
	switch {
	case user == "temp":
		return sasl.ErrTemporary
	case user == "alice" && pass == testPassword:
		return nil
	}
	return fmt.Errorf("user %q: %w", user, sasl.ErrInvalidCredentials)
}

// guardedFake makes a fake mechanism sasl.Guarded, as the real password
// mechanisms are.
type guardedFake struct{ guard sasl.Guard }

func (g *guardedFake) SetGuard(gd sasl.Guard) { g.guard = gd }

// refused asks the guard about user; true means refused.
func (g *guardedFake) refused(user string) bool { return g.guard != nil && !g.guard(user) }

type plainServer struct {
	guardedFake
	user, identity string
}

func (p *plainServer) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, false, sasl.ErrMalformed
	}
	p.user = string(parts[1])
	if p.refused(p.user) {
		return nil, false, sasl.ErrRefused
	}
	if err := checkPassword(p.user, string(parts[2])); err != nil {
		return nil, false, err
	}
	p.identity = p.user
	return nil, true, nil
}
func (p *plainServer) Identity() string { return p.identity }
func (p *plainServer) Username() string { return p.user }

type loginServer struct {
	guardedFake
	step           int
	user, identity string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	}
	if l.refused(l.user) {
		return nil, false, sasl.ErrRefused
	}
	if err := checkPassword(l.user, string(resp)); err != nil {
		return nil, false, err
	}
	l.identity = l.user
	return nil, true, nil
}
func (l *loginServer) Identity() string { return l.identity }
func (l *loginServer) Username() string { return l.user }

// fixedNow is the time the test servers' clocks show.
var fixedNow = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

// testLimits are the limits of the test servers: Postern's default
// configuration, but with no AUTH delay and shorter timeouts.
var testLimits = Limits{
	MaxMessageSize: 35 << 20, MaxRecipients: 100, MaxErrors: 20, ErrorDelayAfter: 10, ErrorDelay: time.Second,
	CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second, DataTimeLimit: 10 * time.Minute,
	MaxHeaderSize: 256 << 10,
}

// fixture is a Server serving on loopback.
type fixture struct {
	t     testing.TB
	srv   *Server
	addr  string
	spool *testSpool
	dir   *testDir
	logs  *testkit.SyncBuffer
	done  chan error
}

// newFixture starts a server with the given role; opts adjust it first.
func newFixture(t testing.TB, role Role, opts ...func(*Server)) *fixture {
	t.Helper()
	f := &fixture{t: t, spool: &testSpool{}, dir: newTestDir(), logs: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	f.srv = &Server{
		Name:      "test-" + role.String(),
		Role:      role,
		Hostname:  testHost,
		TLSConfig: serverTLSConfig(),
		Limits:    testLimits,
		Directory: f.dir,
		Auth:      testAuth{},
		Spool:     f.spool,
		Logger:    slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       func() time.Time { return fixedNow },
		After:     instantAfter, // no real wait for the error delay
	}
	for _, o := range opts {
		o(f.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	go func() { f.done <- f.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-f.done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(3 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return f
}

// instantAfter is a clock for Server.After whose waits end at once.
func instantAfter(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- fixedNow.Add(d)
	return ch
}

// client is a scripted SMTP client.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// dial connects; for RoleSubmissions it does the TLS handshake first.
// It reads the greeting.
func (f *fixture) dial() *client {
	f.t.Helper()
	c := f.dialNoGreeting()
	c.expect("220 " + testHost + " ESMTP Postern")
	return c
}

func (f *fixture) dialNoGreeting() *client {
	f.t.Helper()
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	if f.srv.Role == RoleSubmissions {
		tc := tls.Client(conn, clientTLSConfig())
		if err := tc.Handshake(); err != nil {
			f.t.Fatalf("TLS handshake: %v", err)
		}
		conn = tc
	}
	f.t.Cleanup(func() { conn.Close() })
	return &client{t: f.t, conn: conn, br: bufio.NewReader(conn)}
}

// send writes line and CRLF.
func (c *client) send(line string) { c.t.Helper(); c.raw(line + "\r\n") }

// raw writes s as it is.
func (c *client) raw(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(replyWait))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// replyWait is how long the test client waits for a reply, a write or
// a handshake before it fails the test. It only bounds a failing test:
// on a loaded machine under -race a 512 KB body through a milter has
// taken over 5 s.
const replyWait = 30 * time.Second

// readReply reads one (possibly multi-line) reply and returns its lines
// without CRLF. It fails the test on a malformed line.
func (c *client) readReply() ([]string, error) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(replyWait))
	var lines []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		if !strings.HasSuffix(l, "\r\n") || len(l) < 6 || (l[3] != ' ' && l[3] != '-') {
			c.t.Fatalf("malformed reply line %q", l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if l[3] == ' ' {
			return lines, nil
		}
	}
}

// expect reads a reply whose last line starts with prefix (and whose
// every line has the same code) and returns the lines joined by "\n".
func (c *client) expect(prefix string) string {
	c.t.Helper()
	lines, err := c.readReply()
	if err != nil {
		c.t.Fatalf("want %q, read error %v (got %q)", prefix, err, lines)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("want reply %q..., got %q", prefix, lines)
	}
	for _, l := range lines {
		if l[:3] != last[:3] {
			c.t.Fatalf("mixed codes in reply %q", lines)
		}
	}
	return strings.Join(lines, "\n")
}

// do sends cmd and expects a reply starting with prefix.
func (c *client) do(cmd, prefix string) string {
	c.t.Helper()
	c.send(cmd)
	return c.expect(prefix)
}

// step is one line of a dialogue: send Send (unless empty) and expect
// a reply starting with Want.
type step struct{ send, want string }

func (c *client) script(steps ...step) {
	c.t.Helper()
	for _, s := range steps {
		if s.send != "" {
			c.send(s.send)
		}
		c.expect(s.want)
	}
}

// expectClosed checks the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(replyWait))
	l, err := c.br.ReadString('\n')
	if err == nil {
		c.t.Fatalf("want connection closed, got %q", l)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open")
	}
}

// startTLS sends STARTTLS, expects 220 and does the handshake.
func (c *client) startTLS() *tls.ConnectionState {
	c.t.Helper()
	c.do("STARTTLS", "220 2.0.0")
	if n := c.br.Buffered(); n > 0 {
		c.t.Fatalf("%d plaintext bytes after the 220", n)
	}
	tc := tls.Client(c.conn, clientTLSConfig())
	tc.SetDeadline(time.Now().Add(replyWait))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	c.conn = tc
	c.br = bufio.NewReader(tc)
	cs := tc.ConnectionState()
	return &cs
}

// plainAuth returns the base64 PLAIN initial response for user, pass.
func plainAuth(user, pass string) string {
	return b64("\x00" + user + "\x00" + pass)
}

// loginTLS says EHLO, starts TLS, says EHLO again and logs in as alice:
// the start of a submission session.
func (c *client) loginTLS() *tls.ConnectionState {
	c.t.Helper()
	c.do("EHLO client.example", "250 ")
	cs := c.startTLS()
	c.do("EHLO client.example", "250 ")
	c.login()
	return cs
}

// login authenticates as alice with PLAIN.
func (c *client) login() {
	c.t.Helper()
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "235 2.7.0")
}

// message returns a small message with the given header lines.
func message(headers ...string) string {
	return strings.Join(headers, "\r\n") + "\r\n\r\nHello.\r\n"
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
