package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/tlsconf"
)

// TestEventsFromTheRealLoggers runs a queue runner and an abuse engine
// with a logger behind Events and checks that their events are kept,
// while the wrapped handler still gets exactly what it asked for.
func TestEventsFromTheRealLoggers(t *testing.T) {
	ev := NewEvents(10)
	var out syncBuffer
	log := slog.New(ev.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))

	dir := t.TempDir()
	spool, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	runner := queue.NewRunner(spool, queue.RunnerOptions{
		Local: queue.DelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpt string, _ *smtp.Message) error {
			if strings.HasPrefix(rcpt, "bad") {
				return queue.Permanent(errors.New("no such mailbox"))
			}
			return nil
		}),
		IsLocal: func(string) bool { return true },
		Logger:  log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	env := &smtp.Envelope{ID: "M1", From: "a@example.com", Recipients: []string{"bob@example.com", "bad@example.com"},
		Body: "7BIT", Listener: "submission", ReceivedAt: time.Now()}
	if err := spool.Put(ctx, env, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two deliveries and the DSN", func() bool { return len(ev.Deliveries()) >= 3 })
	got := map[string]Delivery{}
	for _, d := range ev.Deliveries() {
		got[d.Rcpt] = d
	}
	if d := got["bob@example.com"]; d.Outcome != "delivered" || d.ID != "M1" || !d.Local || d.Time.IsZero() {
		t.Errorf("bob: %+v", d)
	}
	if d := got["bad@example.com"]; d.Outcome != "failed" || d.ID != "M1" || !strings.Contains(d.Error, "no such mailbox") {
		t.Errorf("bad: %+v", d)
	}
	waitUntil(t, "the failure logged", func() bool { return strings.Contains(out.String(), "queue: delivery failed") })
	if strings.Contains(out.String(), "queue: delivered") {
		t.Errorf("the wrapped handler at warn got:\n%s", out.String())
	}

	store := admission.NewMemoryStore()
	eng := admission.NewEngine(store, admission.AbuseOptions{IPBanAfter: 2, AlertStrikes: 1, FailDelay: -1, Logger: log})
	now := time.Now()
	addr := netip.MustParseAddr("192.0.2.66")
	for range 3 {
		eng.AuthResult(ctx, admission.AuthOutcome{Remote: addr, Username: "alice@example.com", Mech: "PLAIN", Now: now})
	}
	as := ev.Anomalies(now.Add(-time.Hour))
	if len(as) != 2 || as[0].Event != "alert" || as[0].Kind != "bruteforce" || as[1].Event != "ban" ||
		as[1].Subject != "192.0.2.66/32" || as[1].Strikes != 1 || as[1].Reason == "" {
		t.Errorf("anomalies: %+v", as)
	}
	if as := ev.Anomalies(time.Now().Add(time.Minute)); len(as) != 0 {
		t.Errorf("anomalies in the future: %+v", as)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEventsRing keeps the last n, newest first, and reads attributes
// given to With.
func TestEventsRing(t *testing.T) {
	ev := NewEvents(3)
	log := slog.New(ev.Handler(slog.NewTextHandler(io.Discard, nil)))
	for _, id := range []string{"A", "B", "C", "D", "E"} {
		log.With("id", id).WithGroup("g").Info("queue: delivered", "rcpt", "r@x", "local", false, "remote_mta", "mx.example")
	}
	log.Info("something else", "id", "Z")
	var ids []string
	for _, d := range ev.Deliveries() {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, "") != "EDC" {
		t.Errorf("ring: %v", ids)
	}
	if d := ev.Deliveries()[0]; d.Local || d.RemoteMTA != "" && d.RemoteMTA != "mx.example" {
		t.Errorf("delivery: %+v", d)
	}
}

// TestHTTPToken: the API over HTTP wants the token; basic auth opens the
// status page only; local submission stays on the socket.
func TestHTTPToken(t *testing.T) {
	f := newFixture(t)
	const token = "0123456789abcdef-token"
	var reloads atomic.Int32
	var reloadErr atomic.Value
	reloadErr.Store("")
	srv := &Server{Spool: f.spool, Runner: f.runner, Bans: admission.NewMemoryStore(), Logger: quiet(),
		Reload: func() error {
			reloads.Add(1)
			if s := reloadErr.Load().(string); s != "" {
				return errors.New(s)
			}
			return nil
		}}
	hs := httptest.NewServer(srv.HTTPHandler(token))
	defer hs.Close()
	do := func(method, path string, set func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth("admin", tok) }
	}
	for _, tc := range []struct {
		method, path string
		set          func(*http.Request)
		want         int
	}{
		{"GET", "/queue", nil, 401},
		{"GET", "/queue", bearer("wrong"), 401},
		{"GET", "/queue", bearer(""), 401},
		{"GET", "/queue", bearer(token + "x"), 401},
		{"GET", "/queue", basic(token), 401}, // basic only for the page
		{"POST", "/reload", basic(token), 401},
		{"POST", "/bans?prefix=192.0.2.1", basic(token), 401},
		{"POST", "/reload", nil, 401},
		{"GET", "/", nil, 401},
		{"GET", "/", basic("wrong"), 401},
		{"GET", "/queue", bearer(token), 200},
		{"GET", "/bans", bearer(token), 200},
		{"GET", "/queue/nope", bearer(token), 404},
		{"POST", "/bans?prefix=192.0.2.1&for=1h", bearer(token), 201},
		{"POST", "/reload", bearer(token), 200},
		{"POST", "/submit", bearer(token), 403},
		{"GET", "/", basic(token), 200},
		{"GET", "/", bearer(token), 200},
	} {
		if code, body := do(tc.method, tc.path, tc.set); code != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.want, body)
		}
	}
	if n := reloads.Load(); n != 1 {
		t.Errorf("%d reloads, want 1", n)
	}
	reloadErr.Store("certificate kept: no such file")
	if code, body := do("POST", "/reload", bearer(token)); code != 500 || !strings.Contains(body, "certificate kept") {
		t.Errorf("failed reload: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", hs.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("page 401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
}

// TestReloadOverSocket: postern reload's client call.
func TestReloadOverSocket(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.client.Reload(ctx); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Reload without a reloader: %v", err)
	}
	var n atomic.Int32
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(), Reload: func() error {
		if n.Add(1) == 2 {
			return errors.New("users kept: bad file")
		}
		return nil
	}}
	sock := f.dir + "/reload.sock"
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := &Client{SocketPath: sock}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "users kept: bad file") {
		t.Fatalf("second reload: %v", err)
	}
	if err := (&Client{SocketPath: f.dir + "/none.sock"}).Reload(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no server: %v", err)
	}
}

type certList map[string]*tls.Certificate

func (c certList) Certificates() map[string]*tls.Certificate { return c }

// TestStatusPage renders the page with a message, a ban, a certificate,
// a delivery and an anomaly, and checks that hostile text is escaped.
func TestStatusPage(t *testing.T) {
	f := newFixture(t)
	f.put(t, "Q1", "alice@example.com", "bob@example.net")
	waitUntil(t, "the first attempt", func() bool { return f.calls.Load() >= 1 })
	now := time.Now()
	store := admission.NewMemoryStore()
	store.PutBan(context.Background(), admission.Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		Until: now.Add(3 * time.Hour), Reason: "<script>alert(1)</script>", Created: now, Strikes: 2})
	certFile, keyFile, err := tlsconf.EnsureSelfSigned(t.TempDir(), []string{"mail.example.com"}, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ev := NewEvents(10)
	log := slog.New(ev.Handler(slog.NewTextHandler(io.Discard, nil)))
	log.With("id", "D1").Info("queue: delivered", "rcpt", "carol@example.org", "local", false, "remote_mta", "mx.example.org")
	log.Warn("auth abuse alert", "kind", "stuffing", "remote", "203.0.113.5", "usernames", 7, "window", "10m0s")
	srv := &Server{Spool: f.spool, Runner: f.runner, Bans: store, Logger: quiet(), Events: ev,
		Certs: certList{"tls/cert.pem": &cert}, Version: "0.9.0 (25e3e00a1b2c)"}
	hs := httptest.NewServer(srv.HTTPHandler("0123456789abcdef-token"))
	defer hs.Close()
	req, _ := http.NewRequest("GET", hs.URL+"/", nil)
	req.SetBasicAuth("", "0123456789abcdef-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{
		`<span class="big" id="queue-depth">1</span> message in the queue`,
		"<code>Q1</code> from &lt;alice@example.com&gt;",
		"carol@example.org", "mx.example.org", "<code>D1</code>",
		"198.51.100.0/24", "&lt;script&gt;alert(1)&lt;/script&gt;",
		"tls/cert.pem", "mail.example.com", cert.Leaf.NotAfter.UTC().Format("2006-01-02 15:04:05Z"),
		"stuffing", "203.0.113.5", "7 usernames tried within 10m0s",
		`<meta http-equiv="refresh" content="30">`,
		`<span id="version">Postern 0.9.0 (25e3e00a1b2c)</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Errorf("page has a script:\n%s", page)
	}
}

// TestStatusPageOnSocket: on the socket the page needs no token.
func TestStatusPageOnSocket(t *testing.T) {
	f := newFixture(t)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", f.sock)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://postern/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="queue-depth">0<`) ||
		!strings.Contains(string(body), "Not recorded on this server") {
		t.Errorf("%d\n%s", resp.StatusCode, body)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 4*time.Minute + 2*time.Second: "4m 2s",
		2*time.Hour + 5*time.Minute: "2h 5m", 76 * time.Hour: "3d 4h", -time.Second: "0s",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestListenGroup: the socket gets the group and mode 0660.
func TestListenGroup(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	gid := os.Getgid()
	l, err := ListenGroup(sock, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %04o", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Errorf("gid %d, want %d", st.Gid, gid)
	}
}
