package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"postern/internal/admission"
)

// TestHTTPToken: the API over HTTP wants the token; basic auth opens the
// status page only; local submission stays on the socket.
func TestHTTPToken(t *testing.T) {
	f := newFixture(t)
	const token = "0123456789abcdef-token"
	var reloads atomic.Int32
	var reloadErr atomic.Value
	reloadErr.Store("")
	srv := &Server{Spool: f.spool, Runner: f.runner, Bans: admission.NewMemoryStore(), Logger: quiet(),
		Reload: func() ReloadReport {
			reloads.Add(1)
			if s := reloadErr.Load().(string); s != "" {
				return ReloadReport{Errors: []string{s}}
			}
			return ReloadReport{}
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
	if _, err := f.client.Reload(ctx); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Reload without a reloader: %v", err)
	}
	var n atomic.Int32
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(), Reload: func() ReloadReport {
		if n.Add(1) == 2 {
			return ReloadReport{Reloaded: []string{"certificates"}, Errors: []string{"users kept: bad file"}}
		}
		return ReloadReport{Config: "/etc/postern/postern.toml", Changed: []ReloadChange{{Key: "limits.max_recipients", Old: "100", New: "50"}}}
	}}
	c := serve(t, srv, f.dir+"/reload.sock")
	if rep, err := c.Reload(ctx); err != nil || len(rep.Changed) != 1 || rep.Changed[0].String() != "limits.max_recipients: 100 → 50" {
		t.Fatalf("first reload: %+v %v", rep, err)
	}
	if rep, err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "users kept: bad file") || len(rep.Reloaded) != 1 {
		t.Fatalf("second reload: %+v %v", rep, err)
	}
	if _, err := (&Client{SocketPath: f.dir + "/none.sock"}).Reload(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no server: %v", err)
	}
}

type certList map[string]*tls.Certificate

func (c certList) Certificates() map[string]*tls.Certificate { return c }

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
