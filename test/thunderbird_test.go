package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/testkit"
)

// TestAutoconfigThunderbird has a real mail client, Thunderbird (Debian's
// package, headless), discover the settings of gina@example.test from the
// real binary: its own account-setup code (FetchConfig.fromISP, which
// fetches and reads Mozilla's autoconfig file, and
// fetchConfigFromExchange, which posts Microsoft's Autodiscover request
// and reads the answer) runs in the client, called over its remote
// protocol (Marionette). The client reaches every host on port 443
// through an HTTP proxy of the test's (its proxy preferences), which
// connects each CONNECT to the autoconfig listener: no name resolution and
// no port 443 are needed. It trusts the test CA through its profile's
// certificate database (certutil).
func TestAutoconfigThunderbird(t *testing.T) {
	integration(t)
	tb := needTool(t, "thunderbird")
	certutil := needTool(t, "certutil")
	_, acAddr, caFile := startAutoconfig(t, true)
	proxy := startConnectProxy(t, acAddr)
	m := startThunderbird(t, tb, certutil, caFile, proxy.addr)

	servers := func(source, altUser string) string {
		return strings.Join([]string{
			"source " + source,
			"incoming imap imap.example.test 993 SSL passwordCleartext gina@example.test",
			"outgoing smtp localhost 465 SSL passwordCleartext gina@example.test",
			"outgoing-alternative smtp localhost 587 alwaysSTARTTLS passwordCleartext " + altUser,
		}, "\n")
	}
	for _, c := range []struct{ name, script, want string }{
		// Thunderbird fills in the address in an outgoing alternative only
		// once the user picks it (replaceVariables leaves it).
		{"Mozilla autoconfig", `
const { FetchConfig } = ChromeUtils.importESModule("resource:///modules/accountcreation/FetchConfig.sys.mjs");
FetchConfig.fromISP("example.test", "gina@example.test", new AbortController().signal).then(describe, e => resolve("error: " + e));`,
			servers("xml xml-from-isp-https", "%EMAILADDRESS%")},
		// Thunderbird reads Encryption "TLS" as STARTTLS by the port
		// only (587); on another port it would use TLS from the first byte.
		{"Microsoft Autodiscover", `
const { fetchConfigFromExchange } = ChromeUtils.importESModule("resource:///modules/accountcreation/ExchangeAutoDiscover.sys.mjs");
fetchConfigFromExchange("example.test", "gina@example.test", new AbortController().signal, null, "secret",
  () => Promise.reject(new Error("no redirect expected"))).then(describe, e => resolve("error: " + e + " " + (e.errors || []).join("; ")));`,
			servers("exchange exchange-from-url1", "gina@example.test")},
		// What the account setup runs: all lookups at once, Mozilla's
		// file (ranked above Autodiscover) wins.
		{"account setup", `
const { FindConfig } = ChromeUtils.importESModule("resource:///modules/accountcreation/FindConfig.sys.mjs");
FindConfig.parallelAutoDiscovery("example.test", "gina@example.test", new AbortController().signal, "secret").next().then(
  r => r.done && r.value ? describe(r.value) : resolve("no config: " + JSON.stringify(r)), e => resolve("error: " + e));`,
			servers("xml xml-from-isp-https", "%EMAILADDRESS%")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := m.executeAsync(t, thunderbirdDescribe+c.script); got != c.want {
				t.Errorf("Thunderbird found\n%s\nwant\n%s", got, c.want)
			}
		})
	}

	t.Logf("Thunderbird asked the proxy for %v", proxy.targets())
	for _, want := range []string{"autoconfig.example.test:443", "autodiscover.example.test:443"} {
		if !slices.Contains(proxy.targets(), want) {
			t.Errorf("Thunderbird did not connect to %s: %v", want, proxy.targets())
		}
	}
}

// thunderbirdDescribe is the start of a script run in Thunderbird's chrome
// context: describe resolves the script with an AccountConfig as lines
// (the source, then each server: type, host, port, socket type, auth
// method, user name), after Thunderbird filled in gina's address as its
// account setup does (AccountConfig.replaceVariables).
const thunderbirdDescribe = `const resolve = arguments[arguments.length - 1];
const { AccountConfig } = ChromeUtils.importESModule("resource:///modules/accountcreation/AccountConfig.sys.mjs");
function name(iface, v) { return Object.keys(iface).find(k => iface[k] === v) || String(v); }
function line(kind, s) {
  return [kind, s.type, s.hostname, s.port, name(Ci.nsMsgSocketType, s.socketType), name(Ci.nsMsgAuthMethod, s.auth), s.username].join(" ");
}
function describe(c) {
  AccountConfig.replaceVariables(c, "Gina", "gina@example.test", "secret");
  const out = ["source " + [c.source, c.subSource].filter(x => x).join(" ")];
  out.push(line("incoming", c.incoming));
  for (const a of c.incomingAlternatives) out.push(line("incoming-alternative", a));
  out.push(line("outgoing", c.outgoing));
  for (const a of c.outgoingAlternatives) out.push(line("outgoing-alternative", a));
  resolve(out.join("\n"));
}
`

// connectProxy is an HTTP proxy on loopback that connects every CONNECT
// to port 443 of example.test or a name under it to one address, refuses
// the others (403), and answers plain HTTP requests 404 (Postern serves
// autoconfiguration over HTTPS only).
type connectProxy struct {
	addr   string
	refuse map[string]bool // hosts refused too (403), set before use
	mu     sync.Mutex
	seen   []string
}

// targets returns the hosts asked for so far, CONNECT's host:port or the
// URL of a plain request, in order.
func (p *connectProxy) targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func startConnectProxy(t *testing.T, to string) *connectProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &connectProxy{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, to)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn, to string) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	target := req.Host
	if req.Method != http.MethodConnect {
		target = req.URL.String()
	}
	p.mu.Lock()
	p.seen = append(p.seen, target)
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	if h := req.URL.Hostname(); req.URL.Port() != "443" || h != "example.test" && !strings.HasSuffix(h, ".example.test") || p.refuse[h] {
		// The client's own services (live.thunderbird.net at start), its
		// mail servers, and the names a test hides.
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", to)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		io.Copy(up, br)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	<-done
}

// marionette is a client of the remote protocol of Gecko programs
// (Firefox, Thunderbird): each message is its length in decimal, a colon
// and a JSON array; a command is [0, id, name, parameters], its response
// [1, id, error, result].
type marionette struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

func (m *marionette) read() ([]byte, error) {
	n, err := m.r.ReadString(':')
	if err != nil {
		return nil, err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, ":"))
	if err != nil || size > 16<<20 {
		return nil, fmt.Errorf("marionette: bad length %q", n)
	}
	b := make([]byte, size)
	_, err = io.ReadFull(m.r, b)
	return b, err
}

// command sends a command and returns its result; a Marionette error
// fails the test.
func (m *marionette) command(t *testing.T, name string, params any) json.RawMessage {
	t.Helper()
	m.id++
	b, _ := json.Marshal([]any{0, m.id, name, params})
	m.conn.SetDeadline(time.Now().Add(90 * time.Second))
	if _, err := fmt.Fprintf(m.conn, "%d:%s", len(b), b); err != nil {
		t.Fatalf("marionette %s: %v", name, err)
	}
	b, err := m.read()
	if err != nil {
		t.Fatalf("marionette %s: %v", name, err)
	}
	var resp []json.RawMessage
	if err := json.Unmarshal(b, &resp); err != nil || len(resp) != 4 {
		t.Fatalf("marionette %s: bad response %s", name, b)
	}
	if string(resp[2]) != "null" {
		t.Fatalf("marionette %s: %s", name, resp[2])
	}
	return resp[3]
}

// executeAsync runs script in the chrome context and returns the string
// it resolves with.
func (m *marionette) executeAsync(t *testing.T, script string) string {
	t.Helper()
	res := m.command(t, "WebDriver:ExecuteAsyncScript", map[string]any{"script": script, "args": []any{}, "scriptTimeout": 60000})
	var v struct{ Value string }
	if err := json.Unmarshal(res, &v); err != nil {
		t.Fatalf("script result %s: %v", res, err)
	}
	return v.Value
}

// startThunderbird runs Thunderbird headless in a new profile that trusts
// caFile and sends all HTTP and HTTPS through proxy, and returns a
// Marionette session in its chrome context.
func startThunderbird(t *testing.T, tb, certutil, caFile, proxy string) *marionette {
	t.Helper()
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	os.Mkdir(profile, 0o700)
	host, port, _ := net.SplitHostPort(proxy)
	prefs := fmt.Sprintf(`user_pref("marionette.port", 0);
user_pref("network.proxy.type", 1);
user_pref("network.proxy.ssl", %[1]q);
user_pref("network.proxy.ssl_port", %[2]s);
user_pref("network.proxy.http", %[1]q);
user_pref("network.proxy.http_port", %[2]s);
user_pref("network.proxy.no_proxies_on", "");
user_pref("network.proxy.allow_hijacking_localhost", true);
user_pref("mailnews.auto_config_url", "");
user_pref("app.update.enabled", false);
user_pref("mail.shell.checkDefaultClient", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
`, host, port)
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sql:" + profile
	for _, args := range [][]string{
		{"-N", "-d", db, "--empty-password"},
		{"-A", "-d", db, "-n", "postern-test-ca", "-t", "C,,", "-i", caFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	var log testkit.SyncBuffer
	cmd := exec.Command(tb, "--headless", "--marionette", "--remote-allow-system-access", "--no-remote", "--profile", profile)
	cmd.Env = append(os.Environ(), "HOME="+dir, "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("thunderbird's output:\n%s", tail(log.String(), 4000))
		}
	})
	var addr string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(profile, "MarionetteActivePort")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			addr = "127.0.0.1:" + strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thunderbird started no Marionette server in 60 s:\n%s", tail(log.String(), 4000))
		}
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m := &marionette{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if hello, err := m.read(); err != nil || !strings.Contains(string(hello), `"marionetteProtocol":3`) {
		t.Fatalf("marionette hello %s: %v", hello, err)
	}
	m.command(t, "WebDriver:NewSession", map[string]any{})
	m.command(t, "Marionette:SetContext", map[string]any{"value": "chrome"})
	return m
}
