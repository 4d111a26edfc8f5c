package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/sasl"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/testcert"
)

const (
	testHost = "mail.example.org"
	testUser = "alice@example.org"
	testPass = "load-pass"
)

type dir struct{}

func (dir) IsLocalDomain(d string) bool { return d == "example.org" }
func (dir) RecipientExists(ctx context.Context, a string) (bool, error) {
	return a == "bob@example.org", nil
}
func (dir) MaySendAs(ctx context.Context, user, a string) (bool, error) { return a == user, nil }

type auth struct{}

func (auth) Mechanisms(cs *tls.ConnectionState) []string { return []string{"PLAIN"} }
func (auth) Start(ctx context.Context, mech string, cs *tls.ConnectionState) (sasl.Server, bool) {
	if mech != "PLAIN" {
		return nil, false
	}
	return sasl.NewPlain(ctx, func(ctx context.Context, u, p string) (string, error) {
		if u == testUser && p == testPass {
			return u, nil
		}
		return "", sasl.ErrInvalidCredentials
	}), true
}

// spool counts messages and checks each holds the body loadgen sent.
type spool struct {
	n   atomic.Int64
	bad atomic.Int64
}

func (s *spool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if !bytes.Contains(msg.Header, []byte("Subject: loadgen\r\n")) {
		s.bad.Add(1)
	}
	s.n.Add(1)
	return nil
}

// CreateFile refuses: loadgen's messages are small and stay in memory.
func (s *spool) CreateFile(id string) (smtp.SpoolFile, error) {
	return nil, errors.New("test spool: no files")
}

var certs = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	return testcert.SelfSigned(testcert.Spec{DNSNames: []string{testHost}})
})

// serve starts a real smtpd.Server in role on loopback.
func serve(t *testing.T, role smtpd.Role) (addr string, sp *spool, srv *smtpd.Server) {
	t.Helper()
	cert, _ := certs()
	sp = &spool{}
	srv = &smtpd.Server{
		Name: "load-" + role.String(), Role: role, Hostname: testHost,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Directory: dir{}, Auth: auth{}, Spool: sp,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return l.Addr().String(), sp, srv
}

func clientTLS() *tls.Config {
	_, pool := certs()
	return &tls.Config{RootCAs: pool, ServerName: testHost}
}

func TestRunModes(t *testing.T) {
	for _, tc := range []struct {
		role    smtpd.Role
		mode    Mode
		user    string
		from    string
		perConn int
	}{
		{smtpd.RoleMX, ModePlain, "", "x@remote.example", 1},
		{smtpd.RoleMX, ModePlain, "", "x@remote.example", 7},
		{smtpd.RoleSubmission, ModeSTARTTLS, testUser, testUser, 1},
		{smtpd.RoleSubmission, ModeSTARTTLS, testUser, testUser, 10},
		{smtpd.RoleSubmissions, ModeTLS, testUser, testUser, 3},
	} {
		t.Run(fmt.Sprintf("%s/m%d", tc.mode, tc.perConn), func(t *testing.T) {
			addr, sp, _ := serve(t, tc.role)
			r, err := Run(context.Background(), Options{
				Addr: addr, Mode: tc.mode, TLSConfig: clientTLS(), User: tc.user, Pass: testPass,
				From: tc.from, Rcpt: []string{"bob@example.org"},
				Concurrency: 4, Messages: 50, PerConn: tc.perConn, Size: 5000, Timeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Messages != 50 || r.Errors != 0 {
				t.Fatalf("messages %d errors %d (%s), want 50 and 0", r.Messages, r.Errors, r.FirstError)
			}
			if got := sp.n.Load(); got != 50 || sp.bad.Load() != 0 {
				t.Errorf("server spooled %d (%d bad), want 50", got, sp.bad.Load())
			}
			wantSessions := (50 + tc.perConn - 1) / tc.perConn
			if r.Sessions < wantSessions || r.Sessions > wantSessions+4 {
				t.Errorf("sessions %d, want about %d", r.Sessions, wantSessions)
			}
			if r.PerSecond <= 0 || r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
				t.Errorf("bad figures: %+v", r)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	// Wrong password: every session fails at AUTH and is counted.
	addr, sp, _ := serve(t, smtpd.RoleSubmissions)
	r, err := Run(context.Background(), Options{
		Addr: addr, Mode: ModeTLS, TLSConfig: clientTLS(), User: testUser, Pass: "wrong",
		From: testUser, Rcpt: []string{"bob@example.org"}, Concurrency: 2, Messages: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 0 || r.Errors != 6 || !strings.Contains(r.FirstError, "AUTH: 535") || sp.n.Load() != 0 {
		t.Errorf("got %+v, want 6 AUTH errors", r)
	}
	// A refused recipient fails the message.
	r, _ = Run(context.Background(), Options{
		Addr: addr, Mode: ModeTLS, TLSConfig: clientTLS(), User: testUser, Pass: testPass,
		From: testUser, Rcpt: []string{"nobody@example.org"}, Messages: 2,
	})
	if r.Errors != 2 || !strings.Contains(r.FirstError, "RCPT: 550") {
		t.Errorf("got %+v, want 2 RCPT errors", r)
	}
	// Certificate not trusted.
	r, _ = Run(context.Background(), Options{
		Addr: addr, Mode: ModeTLS, User: testUser, Pass: testPass,
		From: testUser, Rcpt: []string{"bob@example.org"}, Messages: 1,
	})
	if r.Errors != 1 || !strings.Contains(r.FirstError, "tls") {
		t.Errorf("got %+v, want a TLS error", r)
	}
	if _, err := Run(context.Background(), Options{Addr: addr}); err == nil {
		t.Error("Run without From and Rcpt: no error")
	}
}

func TestRunDuration(t *testing.T) {
	addr, sp, _ := serve(t, smtpd.RoleMX)
	t0 := time.Now()
	r, err := Run(context.Background(), Options{
		Addr: addr, From: "x@remote.example", Rcpt: []string{"bob@example.org"},
		Concurrency: 2, PerConn: 5, Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Errorf("ran %v, want about 300ms", el)
	}
	if r.Messages == 0 || int64(r.Messages) != sp.n.Load() {
		t.Errorf("messages %d, server saw %d", r.Messages, sp.n.Load())
	}
}

func TestIdle(t *testing.T) {
	addr, _, srv := serve(t, smtpd.RoleSubmission)
	id, err := OpenIdle(context.Background(), IdleOptions{
		Options:  Options{Addr: addr, Mode: ModeSTARTTLS, TLSConfig: clientTLS(), User: testUser, Pass: testPass},
		Sessions: 100, Dialers: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	if id.Opened != 100 || id.Errors != 0 {
		t.Fatalf("opened %d errors %d (%s)", id.Opened, id.Errors, id.FirstError)
	}
	alive, err := id.Check(8)
	if alive != 100 || err != nil {
		t.Errorf("alive %d (%v), want 100", alive, err)
	}
	id.Close()
	// After the server shuts down, no session is alive.
	id, _ = OpenIdle(context.Background(), IdleOptions{
		Options:  Options{Addr: addr, Mode: ModeSTARTTLS, TLSConfig: clientTLS()},
		Sessions: 5,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	alive, err = id.Check(0)
	if alive != 0 || err == nil {
		t.Errorf("after shutdown: alive %d (%v), want 0 and an error", alive, err)
	}
	id.Close()
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d)
	if p.P50 != 50*time.Millisecond || p.P90 != 90*time.Millisecond || p.P99 != 99*time.Millisecond || p.Max != 100*time.Millisecond {
		t.Errorf("got %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("empty: not zero")
	}
}

func TestMessage(t *testing.T) {
	msg := Message("a@example.org", "b@example.org", 10240)
	m := append(bytes.Clone(msg.Header), messageBody(msg)...)
	if len(m) < 10000 || len(m) > 10400 || !bytes.HasSuffix(m, []byte("again.\r\n")) || !bytes.HasSuffix(msg.Header, []byte("\r\n\r\n")) {
		t.Errorf("len %d, end %q", len(m), m[len(m)-8:])
	}
	if bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("bare LF")
	}
}

// messageBody returns the body of m, which Message keeps in memory.
func messageBody(m *smtp.Message) []byte {
	b, _ := m.Body.Bytes()
	return b
}

func TestRunResume(t *testing.T) {
	addr, _, _ := serve(t, smtpd.RoleSubmissions)
	var resumed atomic.Int64
	cfg := clientTLS()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Add(1)
		}
		return nil
	}
	r, err := Run(context.Background(), Options{
		Addr: addr, Mode: ModeTLS, TLSConfig: cfg, User: testUser, Pass: testPass, Resume: true,
		From: testUser, Rcpt: []string{"bob@example.org"}, Concurrency: 1, Messages: 5,
	})
	if err != nil || r.Messages != 5 || r.Errors != 0 {
		t.Fatalf("%+v, %v", r, err)
	}
	if resumed.Load() == 0 {
		t.Error("no session resumed")
	}
}
