package sasl_test

// Real clients against a real smtpd.Server with the Mechanisms
// authenticator over loopback: Python's smtplib (CRAM-MD5, PLAIN, LOGIN),
// swaks (CRAM-MD5) and curl (OAUTHBEARER, XOAUTH2). Each test is skipped
// when its tool is missing, unless POSTERN_INTEGRATION=1.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"postern/internal/oauth"
	"postern/internal/sasl"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/testcert"
)

const (
	alice     = "alice@example.org"
	alicePass = "Tr0ub4dor&3 horse"
	issuer    = "https://idp.example.org"
	audience  = "smtp.example.org"
)

// tool returns the path of a client program, skipping the test when it is
// missing (failing under POSTERN_INTEGRATION=1).
func tool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("POSTERN_INTEGRATION") == "1" {
		t.Fatalf("%s not installed", names[0])
	}
	t.Skipf("%s not installed", names[0])
	return ""
}

// secrets holds alice's SCRAM and CRAM-MD5 secrets.
type secrets struct {
	cram  sasl.CRAMMD5Secret
	scram map[string]sasl.SCRAMCredentials // by hash
}

func (s secrets) SCRAM(ctx context.Context, user, hash string) (sasl.SCRAMCredentials, error) {
	c, ok := s.scram[hash]
	if !ok || !strings.EqualFold(user, alice) {
		return sasl.SCRAMCredentials{}, fmt.Errorf("no user: %w", sasl.ErrInvalidCredentials)
	}
	return c, nil
}

func (s secrets) CRAMMD5(ctx context.Context, user string) (sasl.CRAMMD5Secret, error) {
	if !strings.EqualFold(user, alice) {
		return sasl.CRAMMD5Secret{}, fmt.Errorf("no user: %w", sasl.ErrInvalidCredentials)
	}
	return s.cram, nil
}

func checkPassword(ctx context.Context, user, pass string) (string, error) {
	if strings.EqualFold(user, alice) && pass == alicePass {
		return alice, nil
	}
	return "", fmt.Errorf("bad password: %w", sasl.ErrInvalidCredentials)
}

// directory: example.org is local, every address exists, alice may send
// as herself.
type directory struct{}

func (directory) IsLocalDomain(d string) bool { return d == "example.org" }
func (directory) RecipientExists(context.Context, string) (bool, error) {
	return true, nil
}
func (directory) MaySendAs(_ context.Context, user, addr string) (bool, error) {
	return user == alice && strings.EqualFold(addr, alice), nil
}

// spool keeps messages in memory.
type spool struct {
	mu   sync.Mutex
	envs []smtp.Envelope
}

// CreateFile refuses: the tests' messages are small and stay in memory.
func (s *spool) CreateFile(id string) (smtp.SpoolFile, error) {
	return nil, errors.New("test spool: no files")
}

func (s *spool) PutMessage(_ context.Context, env *smtp.Envelope, _ *smtp.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.envs = append(s.envs, *env)
	return nil
}

func (s *spool) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.envs)
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a submission server on loopback with its CA file and signing key.
type env struct {
	addr, port string
	caFile     string
	key        *ecdsa.PrivateKey
	ca         *testcert.CA
	dir        string
	spool      *spool
	logs       *logBuffer
}

// start runs a RoleSubmission server (STARTTLS) offering enabled.
func start(t *testing.T, enabled ...string) *env {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA()
	srvCert := ca.Issue(testcert.Spec{DNSNames: []string{"mx.example.org", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	e := &env{caFile: filepath.Join(dir, "ca.pem"), spool: &spool{}, logs: &logBuffer{}, ca: ca, dir: dir}
	ca.WriteFile(t, e.caFile)

	// OAuth: tokens are ES256 JWTs checked against a JWKS file.
	e.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &e.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}

	sec := secrets{cram: sasl.NewCRAMMD5Secret(alice, alicePass), scram: map[string]sasl.SCRAMCredentials{}}
	for _, h := range []string{sasl.HashSHA1, sasl.HashSHA256} {
		salt := make([]byte, 16)
		rand.Read(salt)
		c, err := sasl.NewSCRAMCredentials(alice, alicePass, h, 4096, salt)
		if err != nil {
			t.Fatal(err)
		}
		sec.scram[h] = c
	}
	srv := &smtpd.Server{
		Name:     "submission",
		Role:     smtpd.RoleSubmission,
		Hostname: "mx.example.org",
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{srvCert},
			// Client certificates are verified when given (EXTERNAL).
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  ca.Pool,
		},
		Limits:    smtpd.Limits{CommandTimeout: 10 * time.Second},
		Directory: directory{},
		Spool:     e.spool,
		Logger:    slog.New(slog.NewTextHandler(e.logs, nil)),
		Auth: &sasl.Mechanisms{
			Enabled:           enabled,
			Check:             checkPassword,
			Secrets:           sec,
			Tokens:            &oauth.JWT{JWKSFile: jwksFile, Issuer: issuer, Audience: audience, UserClaim: "email"},
			Hostname:          "mx.example.org",
			ServerCertificate: func(*tls.ConnectionState) *x509.Certificate { return srvCert.Leaf },
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	_, e.port, _ = net.SplitHostPort(e.addr)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, smtpd.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// token signs an access token for email, valid for exp from now.
func (e *env) token(t *testing.T, email string, exp time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: crypto.Signer(e.key)}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: issuer, Audience: jwt.Audience{audience}, Expiry: jwt.NewNumericDate(now.Add(exp)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)),
	}).Claims(map[string]any{"email": email}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// run runs a client program with a deadline and returns its output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: test\r\n\r\nHello.\r\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// wantAuth checks that the server logged an auth event for mech with outcome.
func (e *env) wantAuth(t *testing.T, mech, outcome string) {
	t.Helper()
	want := "mechanism=" + mech
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "msg=auth") && strings.Contains(line, want+" ") && strings.Contains(line, "outcome="+outcome) {
			return
		}
	}
	t.Errorf("no auth event %s %s in the log:\n%s", mech, outcome, e.logs.String())
}

const smtplibScript = `
import smtplib, ssl, sys
port, cafile, mech, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example", timeout=15)
s.starttls(context=ctx)
s.ehlo("client.example")
print("offered:", s.esmtp_features.get("auth", ""))
if mech == "login()":
    s.login(user, password)   # smtplib picks CRAM-MD5 first when offered
else:
    s.user, s.password = user, password
    s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")), initial_response_ok=(mech != "LOGIN"))
s.sendmail(user, ["bob@example.org"], "From: %s\r\nTo: bob@example.org\r\nSubject: test\r\n\r\nHello.\r\n" % user)
s.quit()
print("sent")
`

// TestSmtplib drives Python's smtplib: login() choosing CRAM-MD5 by
// itself, and CRAM-MD5, PLAIN and LOGIN one by one; a wrong password gets
// 535.
func TestSmtplib(t *testing.T) {
	py := tool(t, "/usr/bin/python3", "python3")
	e := start(t, "CRAM-MD5", "PLAIN", "LOGIN", "SCRAM-SHA-256")
	for _, mech := range []string{"login()", "CRAM-MD5", "PLAIN", "LOGIN"} {
		out, err := run(t, py, "-c", smtplibScript, e.port, e.caFile, mech, alice, alicePass)
		if err != nil || !strings.Contains(out, "sent") {
			t.Fatalf("smtplib %s: %v\n%s", mech, err, out)
		}
		if mech == "login()" {
			if !strings.Contains(out, "SCRAM-SHA-256-PLUS SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN") {
				t.Errorf("offered: %s", out)
			}
			// smtplib's own preference: CRAM-MD5 first.
			e.wantAuth(t, "CRAM-MD5", "success")
		}
	}
	e.wantAuth(t, "CRAM-MD5", "success")
	e.wantAuth(t, "PLAIN", "success")
	e.wantAuth(t, "LOGIN", "success")
	if n := e.spool.count(); n != 4 {
		t.Errorf("%d messages spooled, want 4", n)
	}
	out, err := run(t, py, "-c", smtplibScript, e.port, e.caFile, "CRAM-MD5", alice, "wrong")
	if err == nil || !strings.Contains(out, "535") {
		t.Errorf("wrong password: %v\n%s", err, out)
	}
	e.wantAuth(t, "CRAM-MD5", "failure")
	if strings.Contains(e.logs.String(), alicePass) {
		t.Error("the password is in the log")
	}
}

// TestSwaksCRAMMD5 drives swaks --auth CRAM-MD5 over STARTTLS.
func TestSwaksCRAMMD5(t *testing.T) {
	swaks := tool(t, "swaks")
	e := start(t, "CRAM-MD5", "PLAIN")
	args := []string{"--server", e.addr, "--tls", "--tls-verify", "--tls-ca-path", e.caFile, "--ehlo", "client.example",
		"--auth", "CRAM-MD5", "--auth-user", alice, "--from", alice, "--to", "bob@example.org", "--timeout", "15"}
	out, err := run(t, swaks, append(args, "--auth-password", alicePass)...)
	if err != nil || !strings.Contains(out, "235 2.7.0") || !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	e.wantAuth(t, "CRAM-MD5", "success")
	out, err = run(t, swaks, append(args, "--auth-password", "wrong")...)
	if err == nil || !strings.Contains(out, "535 5.7.8") {
		t.Errorf("swaks wrong password: %v\n%s", err, out)
	}
	e.wantAuth(t, "CRAM-MD5", "failure")
}

// TestCurlOAuth drives curl --oauth2-bearer, offering OAUTHBEARER and
// XOAUTH2 one at a time: curl picks whichever is offered. Expired tokens
// and tokens for another user are refused with 535.
func TestCurlOAuth(t *testing.T) {
	curl := tool(t, "curl")
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		t.Run(mech, func(t *testing.T) {
			e := start(t, mech)
			send := func(user, token string) (string, error) {
				return run(t, curl, "-sS", "-v", "--ssl-reqd", "--cacert", e.caFile, "--max-time", "15",
					"--url", "smtp://127.0.0.1:"+e.port+"/client.example",
					"--mail-from", alice, "--mail-rcpt", "bob@example.org",
					"--user", user, "--oauth2-bearer", token, "--upload-file", "-")
			}
			out, err := send(alice, e.token(t, alice, time.Hour))
			if err != nil || !strings.Contains(out, "AUTH "+mech) || !strings.Contains(out, "235 2.7.0") {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			e.wantAuth(t, mech, "success")
			if n := e.spool.count(); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
			for _, c := range []struct{ name, user, token string }{
				{"expired", alice, e.token(t, alice, -time.Hour)},
				{"other user", "bob@example.org", e.token(t, alice, time.Hour)},
				{"forged", alice, e.token(t, alice, time.Hour)[:40] + "x"},
			} {
				out, err := send(c.user, c.token)
				// After the error challenge curl answers "\x01" and gets
				// 535 for OAUTHBEARER (RFC 7628 §3.2.3); for XOAUTH2 it
				// gives up at once ("Login denied").
				refused := strings.Contains(out, "535 5.7.8")
				if mech == "XOAUTH2" {
					refused = strings.Contains(out, "Login denied")
				}
				if err == nil || !refused || strings.Contains(out, "235 ") {
					t.Errorf("%s: %v\n%s", c.name, err, out)
				}
				// The JSON error challenge went out before the 535.
				if !strings.Contains(out, "< 334 eyJzdGF0dXMiOi") {
					t.Errorf("%s: no JSON error challenge:\n%s", c.name, out)
				}
			}
			e.wantAuth(t, mech, "failure")
		})
	}
}

// clientCert writes a client certificate for emails, signed by the test
// CA (or self-signed when selfSigned), and its key; it returns the paths.
func (e *env) clientCert(t *testing.T, selfSigned bool, emails ...string) (certFile, keyFile string) {
	t.Helper()
	spec := testcert.Spec{CommonName: "client", EmailAddresses: emails, Client: true}
	c := e.ca.Issue(spec)
	if selfSigned {
		c, _ = testcert.SelfSigned(spec)
	}
	certFile = filepath.Join(e.dir, fmt.Sprintf("client-%d.pem", c.Leaf.SerialNumber))
	keyFile = certFile + ".key"
	testcert.WriteFiles(t, c, certFile, keyFile)
	return certFile, keyFile
}

// TestCurlExternal drives curl with a client certificate and
// --login-options AUTH=EXTERNAL: a certificate from the configured CA
// naming alice logs in; one naming bob gets 535; a self-signed one fails
// verification, and with it the TLS handshake (VerifyClientCertIfGiven).
func TestCurlExternal(t *testing.T) {
	curl := tool(t, "curl")
	e := start(t, "EXTERNAL", "PLAIN")
	send := func(cert, key string) (string, error) {
		return run(t, curl, "-sS", "-v", "--ssl-reqd", "--cacert", e.caFile, "--max-time", "15",
			"--url", "smtp://127.0.0.1:"+e.port+"/client.example",
			"--cert", cert, "--key", key, "--login-options", "AUTH=EXTERNAL", "--user", alice+":",
			"--mail-from", alice, "--mail-rcpt", "bob@example.org", "--upload-file", "-")
	}
	cert, key := e.clientCert(t, false, alice)
	out, err := send(cert, key)
	if err != nil || !strings.Contains(out, "250 AUTH EXTERNAL PLAIN") || !strings.Contains(out, "235 2.7.0") {
		t.Fatalf("curl EXTERNAL: %v\n%s", err, out)
	}
	e.wantAuth(t, "EXTERNAL", "success")
	// A certificate of another user: EXTERNAL is offered, the authzid
	// (curl sends --user) does not match, 535.
	cert, key = e.clientCert(t, false, "bob@example.org")
	if out, err := send(cert, key); err == nil || !strings.Contains(out, "535 5.7.8") {
		t.Errorf("other user's certificate: %v\n%s", err, out)
	}
	// An unverified (self-signed) certificate: never accepted.
	cert, key = e.clientCert(t, true, alice)
	if out, err := send(cert, key); err == nil || strings.Contains(out, "AUTH EXTERNAL") && strings.Contains(out, "235 ") {
		t.Errorf("self-signed certificate: %v\n%s", err, out)
	}
	if n := e.spool.count(); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}
