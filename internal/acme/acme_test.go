package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/acme/acmetest"
	"postern/internal/dns/dnstest"
	"postern/internal/testkit"
)

const testHost = "mail.example.com"

// events returns the JSON log events with message msg.
// events returns the JSON log events of s whose msg is msg.
func events(s *testkit.SyncBuffer, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// installed collects what a Manager installs.
type installed struct {
	cur  atomic.Pointer[tls.Certificate]
	ch   chan *tls.Certificate
	hook atomic.Pointer[func(*tls.Certificate)] // called first, when set
}

func newInstalled() *installed { return &installed{ch: make(chan *tls.Certificate, 16)} }

func (i *installed) install(c *tls.Certificate) error {
	if h := i.hook.Load(); h != nil {
		(*h)(c)
	}
	i.cur.Store(c)
	i.ch <- c
	return nil
}

func newManager(t *testing.T, p *acmetest.Pebble, o Options) (*Manager, *installed, *testkit.SyncBuffer) {
	t.Helper()
	in := newInstalled()
	logs := &testkit.SyncBuffer{}
	o.DirectoryURL = p.DirectoryURL
	o.HTTPClient = p.Client
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "acme")
	}
	if o.Hostnames == nil {
		o.Hostnames = []string{testHost}
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = 30 * 24 * time.Hour // Postern's default
	}
	o.Install = in.install
	o.Email = "postmaster@example.com"
	o.Logger = slogJSON(logs)
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m, in, logs
}

// handshake connects to a TLS server serving what in holds and returns
// the leaf it presents.
func handshake(t *testing.T, p *acmetest.Pebble, in *installed, host string) []byte {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return in.cur.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: host, RootCAs: p.Roots})
	if err != nil {
		t.Fatalf("TLS handshake with the ACME certificate: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// TestObtainStoredAndServed obtains a certificate from Pebble (challenges
// not validated), checks that it chains to Pebble's root, is stored 0600
// and is what a TLS server using it presents; a new Manager loads it.
func TestObtainStoredAndServed(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	dir := filepath.Join(t.TempDir(), "acme")
	m, in, _ := newManager(t, p, Options{Dir: dir, Hostnames: []string{testHost, "smtp.example.com"}})
	c, err := m.Obtain(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := p.Verify(t, c.Certificate, testHost)
	p.Verify(t, c.Certificate, "smtp.example.com")
	if got := <-in.ch; got != c {
		t.Fatal("Obtain did not install the certificate")
	}
	if !bytes.Equal(handshake(t, p, in, testHost), leaf.Raw) {
		t.Fatal("the TLS server does not present the ACME leaf")
	}
	certFile, keyFile := CertFiles(dir, []string{testHost})
	for _, f := range []string{certFile, keyFile, filepath.Join(dir, "account.key")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	m2, in2, _ := newManager(t, p, Options{Dir: dir, Hostnames: []string{testHost, "smtp.example.com"}})
	got, err := m2.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Leaf.Raw, leaf.Raw) || (<-in2.ch).Leaf == nil {
		t.Fatal("Load did not install the stored certificate")
	}
	if m2.Due(got, time.Now()) {
		t.Error("a fresh certificate is due")
	}
	if !m2.Due(got, leaf.NotAfter.Add(-29*24*time.Hour)) {
		t.Error("a certificate 29 days from expiry is not due (renew_before 30 days)")
	}
	// The same account key is used again: registering it again is fine.
	if _, err := m2.Obtain(testContext(t)); err != nil {
		t.Fatalf("second order with the stored account: %v", err)
	}
}

// zone maps the test host names to 127.0.0.1 for Pebble's validation.
func zone(t *testing.T) *dnstest.Server {
	return dnstest.New(t, dnstest.Zone{
		testHost:           {dnstest.A("127.0.0.1")},
		"smtp.example.com": {dnstest.A("127.0.0.1")},
	})
}

// TestObtainHTTP01 has Pebble really validate HTTP-01 against the
// Manager's HTTPHandler.
func TestObtainHTTP01(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	t.Cleanup(func() { srv.Close() })
	dns := zone(t)
	p := acmetest.Start(t, acmetest.Options{HTTPPort: l.Addr().(*net.TCPAddr).Port, DNSServer: dns.Addr()})
	m, _, _ := newManager(t, p, Options{Challenge: HTTP01, Hostnames: []string{testHost, "smtp.example.com"}})
	srv.Handler = m.HTTPHandler()
	go srv.Serve(l)
	c, err := m.Obtain(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Verify(t, c.Certificate, "smtp.example.com")
	// Answers are withdrawn after the order.
	resp, err := http.Get("http://" + l.Addr().String() + wellKnown + "x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown token: status %d, want 404", resp.StatusCode)
	}
}

// TestObtainTLSALPN01 has Pebble really validate TLS-ALPN-01 against
// ServeTLSALPN.
func TestObtainTLSALPN01(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dns := zone(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: l.Addr().(*net.TCPAddr).Port, DNSServer: dns.Addr()})
	m, _, _ := newManager(t, p, Options{Challenge: TLSALPN01})
	go m.ServeTLSALPN(l)
	c, err := m.Obtain(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Verify(t, c.Certificate, testHost)
}

// dnsHook publishes DNS-01 records in a dnstest server.
type dnsHook struct {
	s       *dnstest.Server
	added   atomic.Int32
	removed atomic.Int32
}

func (h *dnsHook) Present(_ context.Context, name, value string) error {
	h.s.Set(name, dnstest.TXT(value))
	h.added.Add(1)
	return nil
}

func (h *dnsHook) CleanUp(_ context.Context, name, _ string) error {
	h.s.Remove(name)
	h.removed.Add(1)
	return nil
}

// TestObtainDNS01 has Pebble really validate DNS-01 records published
// through the hook.
func TestObtainDNS01(t *testing.T) {
	dns := zone(t)
	p := acmetest.Start(t, acmetest.Options{DNSServer: dns.Addr()})
	hook := &dnsHook{s: dns}
	m, _, _ := newManager(t, p, Options{Challenge: DNS01, DNSHook: hook})
	c, err := m.Obtain(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Verify(t, c.Certificate, testHost)
	if hook.added.Load() != 1 || hook.removed.Load() != 1 {
		t.Errorf("hook: %d added, %d removed; want 1 and 1", hook.added.Load(), hook.removed.Load())
	}
}

// fakeClock drives the renewal loop: Now is settable, and After records
// the wait asked and fires when the test says.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

// TestRenewNearExpiry: the loop installs the stored certificate, sleeps
// until renew_before ahead of expiry, and, when the clock says it is
// there, obtains and installs a new one.
func TestRenewNearExpiry(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	dir := filepath.Join(t.TempDir(), "acme")
	m, _, _ := newManager(t, p, Options{Dir: dir})
	first, err := m.Obtain(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(first.Leaf.NotAfter.Add(-40 * 24 * time.Hour))
	m, in, logs := newManager(t, p, Options{Dir: dir, Now: clock.Now, After: clock.After, RenewBefore: 30 * 24 * time.Hour})
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	if got := <-in.ch; !bytes.Equal(got.Leaf.Raw, first.Leaf.Raw) {
		t.Fatal("Run did not install the stored certificate first")
	}
	// Due in 10 days; the loop looks again at least once a day.
	if d := <-clock.waits; d != 24*time.Hour {
		t.Fatalf("loop waits %v, want 24h (due in 240h, capped at a day)", d)
	}
	clock.mu.Lock()
	clock.now = first.Leaf.NotAfter.Add(-30*24*time.Hour - time.Hour)
	clock.mu.Unlock()
	clock.fire <- clock.Now()
	if d := <-clock.waits; d != time.Hour {
		t.Fatalf("loop waits %v, want 1h (until 30 days before expiry)", d)
	}
	clock.mu.Lock()
	clock.now = first.Leaf.NotAfter.Add(-29 * 24 * time.Hour)
	clock.mu.Unlock()
	// The new certificate is valid from the real now: bring the clock
	// back there before the loop looks at it.
	back := func(*tls.Certificate) {
		clock.mu.Lock()
		clock.now = time.Now()
		clock.mu.Unlock()
	}
	in.hook.Store(&back)
	clock.fire <- clock.Now()
	renewed := <-in.ch
	if bytes.Equal(renewed.Leaf.Raw, first.Leaf.Raw) {
		t.Fatal("no new certificate")
	}
	p.Verify(t, renewed.Certificate, testHost)
	<-clock.waits // waiting for the next renewal
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	stored, err := m.store.loadCert()
	if err != nil || !bytes.Equal(stored.Leaf.Raw, renewed.Leaf.Raw) {
		t.Fatalf("renewed certificate not stored: %v", err)
	}
	if len(events(logs, "acme certificate obtained")) != 1 {
		t.Errorf("log:\n%s", logs.String())
	}
}

// TestRenewFailureBackoff: a name the CA refuses makes every attempt
// fail; each failure raises the alert event and the wait doubles from
// RetryFirst up to RetryMax.
func TestRenewFailureBackoff(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	clock := newFakeClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	m, _, logs := newManager(t, p, Options{
		Hostnames: []string{"blocked-domain.example"}, Now: clock.Now, After: clock.After,
		RetryFirst: time.Minute, RetryMax: 3 * time.Minute,
	})
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		if d := <-clock.waits; d != want {
			t.Fatalf("wait after failure %d: %v, want %v", i+1, d, want)
		}
		if i < 3 {
			clock.fire <- clock.Now()
		}
	}
	cancel()
	<-done
	ev := events(logs, "acme renewal failed")
	if len(ev) != 4 {
		t.Fatalf("%d alert events, want 4; log:\n%s", len(ev), logs.String())
	}
	if ev[0]["level"] != "ERROR" || ev[1]["attempt"] != float64(2) ||
		ev[1]["next_try"] != "2026-11-27T10:02:00Z" || !strings.Contains(ev[1]["err"].(string), "blocked-domain.example") {
		t.Errorf("alert event: %v", ev[1])
	}
	if m.Certificate() != nil {
		t.Error("a certificate after failures only")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 5, 2: 10, 3: 20, 4: 40, 5: 60, 60: 60} {
		if got := Backoff(n, 5, 60); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestCommandHook runs a real hook program with add and remove.
func TestCommandHook(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "calls")
	hook := filepath.Join(dir, "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1 $2 $3\" >> "+out+"\n[ \"$3\" = bad ] && { echo 'no such zone' >&2; exit 3; }\nexit 0\n"), 0o700)
	h := CommandHook{Path: hook}
	ctx := testContext(t)
	if err := h.Present(ctx, "_acme-challenge.mail.example.com.", "abc"); err != nil {
		t.Fatal(err)
	}
	if err := h.CleanUp(ctx, "_acme-challenge.mail.example.com.", "abc"); err != nil {
		t.Fatal(err)
	}
	err := h.Present(ctx, "_acme-challenge.mail.example.com.", "bad")
	if err == nil || !strings.Contains(err.Error(), "no such zone") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing hook: %v", err)
	}
	b, _ := os.ReadFile(out)
	want := "add _acme-challenge.mail.example.com. abc\nremove _acme-challenge.mail.example.com. abc\nadd _acme-challenge.mail.example.com. bad\n"
	if string(b) != want {
		t.Errorf("hook calls:\n%s\nwant:\n%s", b, want)
	}
}

func TestNewOptions(t *testing.T) {
	for _, o := range []Options{
		{Hostnames: []string{"a"}, Dir: "d"},
		{DirectoryURL: "https://x/dir", Dir: "d"},
		{DirectoryURL: "https://x/dir", Hostnames: []string{"a"}},
		{DirectoryURL: "https://x/dir", Hostnames: []string{"a"}, Dir: "d", Challenge: DNS01},
		{DirectoryURL: "https://x/dir", Hostnames: []string{"a"}, Dir: "d"}, // no RenewBefore: no default here
		{DirectoryURL: "https://x/dir", Hostnames: []string{"a"}, Dir: "d", Challenge: "tls-sni-01"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func slogJSON(w *testkit.SyncBuffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// TestInstallRefused: a certificate the installer refuses (as
// tlsconf.Certs.Set refuses a broken chain) fails the attempt and is not
// current, though stored; the loop treats it as a failure.
func TestInstallRefused(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	m, _, logs := newManager(t, p, Options{})
	m.o.Install = func(*tls.Certificate) error { return errors.New("certificate refused: unknown-root") }
	if _, err := m.Obtain(testContext(t)); err == nil || !strings.Contains(err.Error(), "acme: install certificate: certificate refused") {
		t.Fatalf("Obtain: %v", err)
	}
	if m.Certificate() != nil {
		t.Error("a refused certificate is current")
	}
	if _, err := m.store.loadCert(); err != nil {
		t.Errorf("the refused certificate is not stored: %v", err)
	}
	if len(events(logs, "acme certificate obtained")) != 0 {
		t.Error("a refused certificate was logged as obtained")
	}
}
