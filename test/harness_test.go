// Package test holds Postern's outermost tests: they build the real binary,
// start it as a user would, and drive it with real clients (swaks, Python's
// smtplib, curl) and with Go's own SMTP client over real TLS.
package test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/testkit"
)

// binPath is the postern binary built once by TestMain.
var binPath string

// systemConfig is the file the binary reads when neither --config nor
// $POSTERN_CONFIG names one, in place of /etc/postern/postern.toml:
// TestMain builds it so (main.systemConfigPath), so that no test reads
// the machine's file, and a test can stand one there.
var systemConfig string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postern-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "postern")
	systemConfig = filepath.Join(dir, "etc", "postern.toml")
	os.Unsetenv("POSTERN_CONFIG")
	build := exec.Command("go", "build", "-o", binPath, "-ldflags", "-X main.systemConfigPath="+systemConfig, "../cmd/postern")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build postern:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// integration skips t under -short, the only case in which these tests
// do not run.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the real binary (not with -short)")
	}
}

// needTool fails (under POSTERN_INTEGRATION=1, as scripts/test sets) or
// skips the test when a client program is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("%s is required (scripts/test installs it): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// server is one running postern process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	data    string
	config  string // "" for the embedded default
	bare    bool   // the embedded default without --data: data is ./postern-data of its directory
	mx      string
	sub     string
	subs    string
	http    string
	dns     *dnstest.Server // the only resolver of a configured server
	env     []string        // added to the environment of serve ("KEY=value")
	stdout  testkit.SyncBuffer
	stderr  testkit.SyncBuffer
	waited  chan struct{}
	waitErr error
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a server or tool the test starts. The port lies below the
// kernel's ephemeral range (ip_local_port_range), which the kernel never
// picks on its own, neither as a connection's source port nor for a
// listen on port 0: so no other process on this shared machine takes it
// between this check and the server's bind unless it names that very
// port (a port picked from the ephemeral range could go to any other
// process's next connection). Each test process walks the ports from its
// own start, chosen by its pid, so concurrent runs of this package do not
// walk the same ports in step. The address stays 127.0.0.1: the tests'
// certificates, DNS answers and AUTH PLAIN rely on it. No port is handed
// out twice in one process (a config then named one port twice).
func freeAddr(t *testing.T) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	span := ephemeralLow() - portLow
	if freeStart < 0 {
		freeStart = os.Getpid() * 7919 % span
	}
	for range span {
		p := portLow + (freeStart+freeNext)%span
		freeNext++
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if freeGiven[a] {
			continue
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue // another process's
		}
		l.Close()
		freeGiven[a] = true
		return a
	}
	t.Fatalf("freeAddr: no free port in [%d, %d)", portLow, portLow+span)
	return ""
}

// portLow is the lowest port freeAddr hands out: above the fixed ports
// tests and services here use (2525, 5432, 6390, 11332, 14000, ...).
const portLow = 20000

// ephemeralLow returns the first port of the kernel's ephemeral range
// (32768 when it cannot be read, Linux's default).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > portLow+1000 {
				return n
			}
		}
	}
	return 32768
}

var (
	freeMu    sync.Mutex
	freeGiven = map[string]bool{}
	freeStart = -1 // where this process's walk starts, from its pid
	freeNext  int
)

// testConfig writes a config file for a server on free loopback ports with
// its data in dir, plus extra TOML appended, and returns the server
// description (not started).
func testConfig(t *testing.T, dir, extra string) *server {
	t.Helper()
	s := &server{t: t, data: filepath.Join(dir, "data"), mx: freeAddr(t), sub: freeAddr(t), subs: freeAddr(t), http: freeAddr(t)}
	s.config = filepath.Join(dir, "postern.toml")
	// A DNS server on loopback: tests add records with s.dns.Set; nothing
	// reaches the machine's resolver. Its AD bit is trusted, and set only
	// on the names a test marks authentic (a signed zone).
	s.dns = dnstest.New(t, dnstest.Zone{})
	cfg := fmt.Sprintf(`hostname = "localhost"
data_dir = %q
local_domains = ["localhost", "example.test"]

[http]
address = %q

[dns]
servers = [%q]
timeout = "1s"
trust_ad = true

[tls]
self_signed = true

[limits]
auth_fail_delay = "10ms"
shutdown_timeout = "5s"
%s%s`, s.data, s.http, s.dns.Addr(), s.listenersTOML(), extra)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// listenersTOML returns the [[listener]] tables of s's three SMTP
// listeners, each after a blank line.
func (s *server) listenersTOML() string {
	var b strings.Builder
	for _, l := range []struct{ role, addr string }{{"mx", s.mx}, {"submission", s.sub}, {"submissions", s.subs}} {
		fmt.Fprintf(&b, "\n[[listener]]\nrole = %q\naddress = %q\n", l.role, l.addr)
	}
	return b.String()
}

// startWithUser starts a server of testConfig's, with extra
// configuration, that has one user, user with pass.
func startWithUser(t *testing.T, extra, user, pass string) *server {
	t.Helper()
	s := testConfig(t, t.TempDir(), extra)
	s.start()
	s.addUser(user, pass)
	return s
}

// mxAt gives domain, in s's DNS server, the MX host mx.<domain> with
// the address ip, where a peer of the test (Postfix, smtp-sink, another
// server) listens.
func (s *server) mxAt(domain, ip string) {
	s.dns.Set(domain, dnstest.MX(10, "mx."+domain))
	s.dns.Set("mx."+domain, dnstest.A(ip))
}

// args returns the command-line arguments that select this server's
// configuration, for serve and the other subcommands.
func (s *server) args() []string {
	switch {
	case s.config != "":
		return []string{"--config", s.config}
	case s.bare:
		return nil
	}
	return []string{"--data", s.data}
}

// start runs `postern serve` and waits until /healthz answers.
func (s *server) start() {
	s.t.Helper()
	s.startCmd(func(cmd *exec.Cmd) {
		if len(s.env) > 0 {
			cmd.Env = append(os.Environ(), s.env...)
		}
	})
}

// startCmd starts `postern serve` like start, with prep adjusting the
// command first, and waits until /healthz answers.
func (s *server) startCmd(prep func(cmd *exec.Cmd)) {
	t := s.t
	t.Helper()
	s.stdout, s.stderr = testkit.SyncBuffer{}, testkit.SyncBuffer{}
	s.cmd = exec.Command(binPath, append([]string{"serve"}, s.args()...)...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	s.cmd.Dir = filepath.Dir(s.data)
	prep(s.cmd)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.waited = make(chan struct{})
	go func() { s.waitErr = s.cmd.Wait(); close(s.waited) }()
	t.Cleanup(func() {
		if s.running() {
			s.cmd.Process.Kill()
			<-s.waited
		}
		if t.Failed() {
			t.Logf("postern stdout:\n%s", s.stdout.String())
			t.Logf("postern stderr:\n%s", s.stderr.String())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !s.running() {
			t.Fatalf("postern exited early: %v\nstderr:\n%s", s.waitErr, s.stderr.String())
		}
		if resp, err := http.Get("http://" + s.http + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("postern not healthy after 15s\nstderr:\n%s", s.stderr.String())
}

func (s *server) running() bool {
	select {
	case <-s.waited:
		return false
	default:
		return true
	}
}

// signal sends sig and, for SIGTERM and SIGKILL, waits for the exit.
func (s *server) signal(sig syscall.Signal) error {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	if sig == syscall.SIGHUP {
		return nil
	}
	select {
	case <-s.waited:
		return s.waitErr
	case <-time.After(20 * time.Second):
		s.t.Fatalf("postern did not exit after %v", sig)
		return nil
	}
}

// subcommand returns the command that runs a postern subcommand against
// this server's data, with stdin as its input.
func (s *server) subcommand(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, append(args, s.args()...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = filepath.Dir(s.data)
	return cmd
}

// run runs a postern subcommand against this server's data and returns
// its combined output.
func (s *server) run(stdin string, args ...string) (string, error) {
	out, err := s.subcommand(stdin, args...).CombinedOutput()
	return string(out), err
}

// runOut runs a postern command with the server's configuration and
// returns its combined output and exit status.
func (s *server) runOut(stdin string, args ...string) (string, int) {
	s.t.Helper()
	return combinedStatus(s.t, s.subcommand(stdin, args...))
}

// combinedStatus runs cmd and returns its combined output and exit
// status, failing t when it does not run at all.
func combinedStatus(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// command runs the binary with args in dir, with env added to this
// process's environment, and returns its stdout, stderr and exit status.
func command(t *testing.T, dir string, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, append(os.Environ(), env...), strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// addUser adds a user through the CLI, password on stdin.
func (s *server) addUser(addr, pass string) {
	s.t.Helper()
	if out, err := s.run(pass+"\n", "user", "add", addr); err != nil {
		s.t.Fatalf("user add %s: %v\n%s", addr, err, out)
	}
	s.waitLogin(addr, pass).Quit()
}

// waitLogin waits until user logs in with pass on submission (the server
// notices a changed users file within about a second) and returns the
// authenticated session.
func (s *server) waitLogin(user, pass string) *smtp.Client {
	s.t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var c *smtp.Client
		if c, err = dial(s.t, s.sub, user, pass); err == nil {
			return c
		}
	}
	s.t.Fatalf("%s cannot log in within 5s: %v", user, err)
	return nil
}

// waitUntil polls cond every 20 ms, for what the server or another
// process does, and fails t with msg if cond does not hold within d.
func waitUntil(t *testing.T, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	testkit.WaitWithin(t, d, 20*time.Millisecond, msg, cond)
}

// waitLogFor waits until s's log holds want, or fails the test at timeout.
// The log reaches the test through a pipe, a little after a client saw
// the effect.
func waitLogFor(t *testing.T, s *server, want string, timeout time.Duration) {
	t.Helper()
	waitUntil(t, timeout, fmt.Sprintf("no %q in the log after %v", want, timeout), func() bool {
		return strings.Contains(s.stderr.String(), want)
	})
}

// maildirNew lists the messages in the new/ folder of a local mailbox.
func (s *server) maildirNew(mailbox string) []string {
	local, domain, _ := strings.Cut(mailbox, "@")
	dir := filepath.Join(s.data, "mail", domain, local, "new")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitMaildir waits until the mailbox holds a message containing every
// string in want, and returns it.
func (s *server) waitMaildir(mailbox string, want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range s.maildirNew(mailbox) {
			if containsAll(m, want...) {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("no message with %q in %s after 10s; have %d messages", want, mailbox, len(s.maildirNew(mailbox)))
	return ""
}

// containsAll reports whether s contains every string of want.
func containsAll(s string, want ...string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// fileWith returns the content of the first file that pattern (as
// filepath.Glob's) names which contains every string of want, and ""
// when there is none.
func fileWith(pattern string, want ...string) string {
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && containsAll(string(b), want...) {
			return string(b)
		}
	}
	return ""
}

// metricsPage returns the /metrics page of the server whose HTTP
// listener is addr.
func metricsPage(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return string(b)
}

// clientTLS is the TLS configuration clients use against the self-signed
// test certificate.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
}

// needRoot skips the test, saying why, unless it runs as root.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(why)
	}
}

// postfixTool returns the path of a program from Debian's postfix package
// (in /usr/sbin, which may not be on PATH). The peers it starts listen on
// port 25, so the test is skipped when not root.
func postfixTool(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		bin = "/usr/sbin/" + name
	}
	if _, err := os.Stat(bin); err != nil {
		needTool(t, name)
	}
	needRoot(t, name+" listens on port 25 here: needs root")
	return bin
}

// sharedTempDir makes a temporary directory with mode, removed at the end
// of the test. Unlike t.TempDir's, its parent is /tmp itself, so daemons
// running as other users (nobody, postfix) can reach it.
func sharedTempDir(t *testing.T, prefix string, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}
