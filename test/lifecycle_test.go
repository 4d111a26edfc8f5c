package test

import (
	"crypto/tls"
	"fmt"
	"math/big"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"postern/internal/testcert"
)

// dial opens a submission session: STARTTLS, then AUTH PLAIN.
func dial(t *testing.T, addr, user, pass string) (*smtp.Client, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.StartTLS(clientTLS()); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Auth(smtp.PlainAuth("", user, pass, "127.0.0.1")); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// send submits one message on c and returns the error of the final reply.
func send(c *smtp.Client, from, to, body string) error {
	return sendTo(c, from, []string{to}, body)
}

// TestKillDuringLoad kills the server with SIGKILL while eight clients
// submit, then restarts it and checks that every message that got its 250
// reached the Maildir intact (DESIGN.md: nothing acknowledged is lost).
func TestKillDuringLoad(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")

	var (
		mu    sync.Mutex
		acked []string
		count atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64) // 4 KiB in 64-octet lines
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c, err := dial(t, s.sub, "alice@example.test", "alice-secret-1")
			if err != nil {
				t.Errorf("client %d: %v", g, err)
				return
			}
			defer c.Close()
			for n := 0; !stop.Load(); n++ {
				tok := fmt.Sprintf("tok-%d-%d", g, n)
				msg := "From: alice@example.test\r\nSubject: " + tok + "\r\n\r\n" + body + "\r\nEND-" + tok + "\r\n"
				if err := send(c, "alice@example.test", "alice@example.test", msg); err != nil {
					return // the kill cut us off
				}
				mu.Lock()
				acked = append(acked, tok)
				mu.Unlock()
				count.Add(1)
			}
		}(g)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("killing (%v)", time.Now().Format("15:04:05.000"))
	s.signal(syscall.SIGKILL)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < 100 {
		t.Fatalf("only %d messages acknowledged before the kill", n)
	}
	t.Logf("%d messages acknowledged before SIGKILL (%v)", n, time.Now().Format("15:04:05.000"))

	s.start()
	t.Logf("restarted (%v)", time.Now().Format("15:04:05.000"))
	want := make(map[string]bool, n)
	for _, tok := range acked {
		want[tok] = true
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		found := map[string]bool{}
		for _, m := range s.maildirNew("alice@example.test") {
			i := strings.Index(m, "Subject: tok-")
			if i < 0 {
				t.Fatalf("foreign message in maildir:\n%.300s", m)
			}
			tok := strings.Fields(m[i+len("Subject: "):])[0]
			if !strings.HasSuffix(m, "\r\nEND-"+tok+"\r\n") || !strings.Contains(m, body) {
				t.Fatalf("message %s delivered damaged (%d bytes)", tok, len(m))
			}
			found[tok] = true
		}
		var missing []string
		for tok := range want {
			if !found[tok] {
				missing = append(missing, tok)
			}
		}
		if len(missing) == 0 {
			t.Logf("all found (%v)", time.Now().Format("15:04:05.000"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages lost after SIGKILL, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUserCommandsOnLiveServer manages users with the CLI while the server
// runs: the server sees each change without a restart, and a password
// change takes effect at once (the credential cache drops the old one).
func TestUserCommandsOnLiveServer(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("bob@example.test", "first-password")

	login := func(pass string) error {
		var err error
		for i := 0; i < 40; i++ { // the server notices a changed user file within about a second
			var c *smtp.Client
			c, err = dial(t, s.sub, "bob@example.test", pass)
			if err == nil {
				c.Quit()
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	if err := login("first-password"); err != nil {
		t.Fatalf("new user cannot log in: %v", err)
	}
	out, err := s.run("", "user", "list")
	if err != nil || !strings.Contains(out, "bob@example.test") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := s.run("pw\n", "user", "add", "bob@example.test"); err == nil {
		t.Fatalf("adding an existing user succeeded:\n%s", out)
	}
	if out, err := s.run("pw\n", "user", "add", "mallory@elsewhere.example"); err == nil || !strings.Contains(out, "not a local domain") {
		t.Fatalf("user in a foreign domain: %v\n%s", err, out)
	}
	if out, err := s.run("second-password\n", "user", "passwd", "bob@example.test"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if err := login("second-password"); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	if c, err := dial(t, s.sub, "bob@example.test", "first-password"); err == nil {
		c.Close()
		t.Fatal("old password still accepted after passwd")
	} else if !strings.Contains(err.Error(), "535") {
		t.Fatalf("old password: want 535, got %v", err)
	}
	if out, err := s.run("", "user", "delete", "bob@example.test"); err != nil {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	time.Sleep(1500 * time.Millisecond)
	if c, err := dial(t, s.sub, "bob@example.test", "second-password"); err == nil {
		c.Close()
		t.Fatal("deleted user still logs in")
	}
}

// newTestCA creates a root and writes it as PEM to file, for
// tls.ca_file: Postern refuses a chain no trusted root anchors.
func newTestCA(t *testing.T, file string) *testcert.CA {
	t.Helper()
	ca := testcert.NewCA()
	ca.WriteFile(t, file)
	return ca
}

// writeCert writes a fresh self-signed certificate for localhost.
func writeCert(t *testing.T, certFile, keyFile string) *big.Int {
	t.Helper()
	return writeCertBy(t, nil, certFile, keyFile)
}

// writeCertBy writes a fresh certificate for localhost issued by ca
// (self-signed when ca is nil), each file replaced at once.
func writeCertBy(t *testing.T, ca *testcert.CA, certFile, keyFile string) *big.Int {
	t.Helper()
	spec := testcert.Spec{DNSNames: []string{"localhost"}}
	var c tls.Certificate
	if ca != nil {
		c = ca.Issue(spec)
	} else {
		c, _ = testcert.SelfSigned(spec)
	}
	testcert.WriteFiles(t, c, certFile, keyFile)
	return c.Leaf.SerialNumber
}

func peerSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestSignals checks SIGHUP reloads the certificate without dropping an
// open session, and SIGTERM lets a session finish and exits cleanly.
func TestSignals(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t, filepath.Join(dir, "ca.pem"))
	first := writeCertBy(t, ca, certFile, keyFile)
	s := testConfig(t, dir, "")
	cfg, _ := os.ReadFile(s.config)
	cfg = []byte(strings.Replace(string(cfg), "self_signed = true",
		fmt.Sprintf("cert_file = %q\nkey_file = %q\nca_file = %q", certFile, keyFile, filepath.Join(dir, "ca.pem")), 1))
	os.WriteFile(s.config, cfg, 0o600)
	s.start()
	s.addUser("carol@example.test", "carol-password")

	if got := peerSerial(t, s.subs); got.Cmp(first) != 0 {
		t.Fatalf("serving serial %v, want %v", got, first)
	}
	open, err := dial(t, s.sub, "carol@example.test", "carol-password")
	if err != nil {
		t.Fatal(err)
	}
	second := writeCertBy(t, ca, certFile, keyFile)
	s.signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for peerSerial(t, s.subs).Cmp(second) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("certificate not reloaded after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := send(open, "carol@example.test", "carol@example.test", "Subject: after-hup\r\n\r\nx\r\n"); err == nil {
		t.Fatal("message without From: accepted on submission")
	}
	if err := send(open, "carol@example.test", "carol@example.test", "From: carol@example.test\r\nSubject: after-hup\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("session opened before SIGHUP broke: %v", err)
	}
	s.waitMaildir("carol@example.test", "after-hup")

	// A broken certificate on reload keeps the old one.
	os.WriteFile(certFile, []byte("not a certificate"), 0o644)
	s.signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if got := peerSerial(t, s.subs); got.Cmp(second) != 0 {
		t.Fatalf("after a bad reload serving %v, want the previous %v", got, second)
	}

	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	open.Close()
}

// TestBadConfig checks that a bad configuration stops the start with the
// file, the key and the reason.
func TestBadConfig(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, tc := range []struct{ toml, want string }{
		{"hostname = \"localhost\"\nlisten_typo = 1\n", "listen_typo"},
		{"[[listener]]\nrole = \"relay\"\naddress = \"127.0.0.1:1\"\n", "role"},
		{"[[listener]]\nrole = \"mx\"\naddress = \"nonsense\"\n", "address"},
	} {
		p := filepath.Join(dir, "bad.toml")
		os.WriteFile(p, []byte(tc.toml), 0o600)
		s := &server{t: t, config: p}
		out, err := s.run("", "serve")
		if err == nil {
			t.Fatalf("serve with %q started", tc.toml)
		}
		if !strings.Contains(out, "bad.toml") || !strings.Contains(out, tc.want) {
			t.Errorf("config %q: message lacks file or key %q:\n%s", tc.toml, tc.want, out)
		}
	}
}
