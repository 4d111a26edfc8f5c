package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAdminHTTPAndStatusPage runs the real binary with the admin API on
// an HTTPS loopback address: the API wants the token; `postern reload`
// and `postern ban` work over the socket; and Debian's headless Chromium
// renders the status page (HTTP basic auth with the token), whose DOM
// must show the queue depth, the delivery, the ban, the certificate's
// expiry, the chart, the listeners and the version, and the detail view
// of the message in the queue. The server logs warnings only, so the
// page cannot have learnt of the delivery from the log (the status page
// observes the queue and the abuse engine). Set POSTERN_SCREENSHOT_DIR
// to keep the screenshots (status.png, message.png).
func TestAdminHTTPAndStatusPage(t *testing.T) {
	integration(t)
	chromium := needTool(t, "chromium")
	dir := t.TempDir()
	const token = "test-admin-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr := freeAddr(t)
	s := testConfig(t, dir, `
[log]
level = "warn"

[admin]
http_address = "`+adminAddr+`"
token_file = "`+tokenFile+`"
`+quickBanTOML)
	s.dns.ServFail("stuck.example")
	s.start()
	s.addUser("hank@example.test", "hank-password")
	c := mustDial(t, s.sub, "hank@example.test", "hank-password")
	for _, to := range []string{"hank@example.test", "someone@stuck.example"} {
		if err := send(c, "hank@example.test", to, "From: hank@example.test\r\nSubject: status\r\n\r\nx\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	s.waitMaildir("hank@example.test", "Subject: status")
	if out, err := s.run("", "ban", "add", "192.0.2.77", "--for", "2h", "--reason", "status <page> test"); err != nil {
		t.Fatalf("ban add: %v\n%s", err, out)
	}
	// Two wrong passwords from 127.0.0.66: the abuse engine bans it and,
	// with alert_strikes = 1, alerts.
	failLogins(t, "127.0.0.66", s.subs, "hank@example.test", 2)
	if out, err := s.run("", "reload"); err != nil || !strings.Contains(out, "Reloaded") {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if log := s.stderr.String(); strings.Contains(log, "queue: delivered") || !strings.Contains(log, "queue: delivery deferred") {
		t.Errorf("want the deferral logged, and the delivery (INFO) not:\n%s", log)
	}

	// The API over HTTPS: the token or 401.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	get := func(path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+adminAddr+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/queue", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := get("/queue", "Bearer wrong-token-0123456789"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get("/queue", "Bearer "+token)
		if code == 200 && strings.Contains(body, "someone@stuck.example") && strings.Contains(body, `"deferred"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /queue: %d\n%s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/bans", "Bearer "+token); code != 200 || !strings.Contains(body, "192.0.2.77/32") {
		t.Errorf("GET /bans: %d\n%s", code, body)
	}

	// The page in a real browser.
	pemData, err := os.ReadFile(filepath.Join(s.data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemData)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	shotDir := os.Getenv("POSTERN_SCREENSHOT_DIR")
	if shotDir == "" {
		shotDir = t.TempDir()
	}
	shot := filepath.Join(shotDir, "status.png")
	url := "https://admin:" + token + "@" + adminAddr + "/"
	dom := runChromium(t, chromium, "--dump-dom", url)
	runChromium(t, chromium, "--screenshot="+shot, "--window-size=1280,1800", url)
	for _, want := range []string{
		`id="queue-depth">1<`,
		"someone@stuck.example",
		"hank@example.test", ">delivered<", "local mailbox",
		"192.0.2.77/32", "status &lt;page&gt; test",
		"127.0.0.66/32", ">bruteforce<", ">ban<", ">alert<",
		cert.NotAfter.UTC().Format("2006-01-02 15:04:05Z"),
		`<svg class="chart" id="activity"`, `id="total-accepted">2<`, `id="total-delivered">1<`,
		`<span id="version">Postern `, `id="uptime">up `,
		"<td>submissions</td>", "<code>" + s.subs + "</code>", "<code>" + adminAddr + "</code>",
		`<a href="/?outcome=deferred">deferred (1)</a>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The queued message's id links to its detail view.
	m := regexp.MustCompile(`<a href="/message/([0-9a-v]{20})"><code>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no link to a message on the page:\n%s", dom)
	}
	detail := "https://admin:" + token + "@" + adminAddr + "/message/" + m[1]
	ddom := runChromium(t, chromium, "--dump-dom", detail)
	runChromium(t, chromium, "--screenshot="+filepath.Join(shotDir, "message.png"), "--window-size=1280,900", detail)
	for _, want := range []string{"&lt;hank@example.test&gt;", "someone@stuck.example", ">deferred<",
		"server answered SERVFAIL", "Subject: status", `id="reports"`} {
		if !strings.Contains(ddom, want) {
			t.Errorf("the detail view lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s\ndetail DOM:\n%s", dom, ddom)
	}
	for _, f := range []string{shot, filepath.Join(shotDir, "message.png")} {
		if fi, err := os.Stat(f); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
}

// quickBanTOML is the configuration for failLogins to ban with: two
// failed logins ban an address and its first strike alerts, with short
// delays; 127.0.0.1 stays trusted, so only the other loopback addresses
// failLogins uses are banned.
const quickBanTOML = `
[admission]
trusted = ["127.0.0.1/32"]

[abuse]
ip_ban_after = 2
alert_strikes = 1
fail_delay = "10ms"
max_fail_delay = "10ms"
`

// failLogins tries n wrong passwords for user, each in a session of its
// own from src to the implicit-TLS listener addr.
func failLogins(t *testing.T, src, addr, user string, n int) {
	t.Helper()
	for range n {
		c, err := smtpsFrom(src, addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(smtp.PlainAuth("", user, "wrong-password", "localhost")); err == nil {
			t.Fatal("a wrong password was accepted")
		}
		c.Close()
	}
}

// smtpsFrom opens an implicit-TLS SMTP session to addr from the loopback
// address src.
func smtpsFrom(src, addr string) (*smtp.Client, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, clientTLS())
	if err != nil {
		return nil, err
	}
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// runChromium runs headless Chromium on a page with the test's own
// certificate accepted and returns its standard output.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--ignore-certificate-errors", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestAdminSocketGroup: with admin.socket_group the socket is mode 0660
// with the group, the data directory 0710 with it, and the commands
// still work. It needs root (to give files to a group) and Debian's adm
// group.
func TestAdminSocketGroup(t *testing.T) {
	integration(t)
	needRoot(t, "needs root to give the socket to another group")
	g, err := user.LookupGroup("adm")
	if err != nil {
		t.Skip("no adm group")
	}
	s := testConfig(t, t.TempDir(), "\n[admin]\nsocket_group = \"adm\"\n")
	s.start()
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(s.data, "admin.sock"), 0o660}, {s.data, 0o710}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != p.mode || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)) != g.Gid {
			t.Errorf("%s: mode %04o gid %d, want %04o gid %s", p.path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, p.mode, g.Gid)
		}
	}
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Errorf("queue list: %v\n%s", err, out)
	}
	if out, err := s.run("", "reload"); err != nil {
		t.Errorf("reload: %v\n%s", err, out)
	}
}
