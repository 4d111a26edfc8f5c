package mailauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
)

// The interop tests check Postern against independent implementations
// from Debian: dkimpy (python3-dkim: dkimverify and the module), OpenDKIM
// (opendkim-tools: opendkim-testmsg) and pyspf (python3-spf). They skip
// when a tool is missing, unless POSTERN_INTEGRATION=1, when they fail.

const systemPython = "/usr/bin/python3"

// needTool skips (or fails, under POSTERN_INTEGRATION=1) when the check
// fails.
func needTool(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("POSTERN_INTEGRATION") == "1" {
		t.Fatalf("%s is missing (POSTERN_INTEGRATION=1)", what)
	}
	t.Skipf("%s is missing", what)
}

func havePython(module string) bool {
	return exec.Command(systemPython, "-c", "import "+module).Run() == nil
}

func haveCommand(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// run runs a command with stdin and returns its output; err includes
// stderr.
func run(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s%s", name, err, out, stderr.Bytes())
	}
	return out, nil
}

// resolvJail runs programs that read /etc/resolv.conf (dkimverify,
// opendkim-testmsg) against the test DNS server: in a private mount
// namespace where /etc/resolv.conf names a loopback address on port 53
// that forwards to srv. It needs root and unshare(1).
type resolvJail struct {
	conf string
}

func newResolvJail(t *testing.T, srv *dnstest.Server) *resolvJail {
	t.Helper()
	needTool(t, "unshare(1) and root", haveCommand("unshare") && os.Geteuid() == 0 &&
		exec.Command("unshare", "-m", "true").Run() == nil)
	// A random loopback address, so that concurrent runs do not collide.
	var ip netip.Addr
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		ip = netip.AddrFrom4([4]byte{127, 53, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		addr := net.JoinHostPort(ip.String(), "53")
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			continue
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
			continue
		}
		break
	}
	if err != nil {
		needTool(t, "a loopback port 53", false)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go forwardUDP(pc, srv.Addr())
	go forwardTCP(ln, srv.Addr())
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("nameserver "+ip.String()+"\noptions edns0 attempts:1 timeout:2\n"), 0o644)
	return &resolvJail{conf: conf}
}

// run runs name with args inside the jail.
func (j *resolvJail) run(stdin []byte, name string, args ...string) ([]byte, error) {
	script := `mount --bind "$0" /etc/resolv.conf && exec "$@"`
	return run(stdin, "unshare", append([]string{"-m", "sh", "-c", script, j.conf, name}, args...)...)
}

func forwardUDP(pc net.PacketConn, to string) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := bytes.Clone(buf[:n])
		go func() {
			c, err := net.Dial("udp", to)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Write(q)
			resp := make([]byte, 65535)
			if n, err := c.Read(resp); err == nil {
				pc.WriteTo(resp[:n], from)
			}
		}()
	}
}

func forwardTCP(ln net.Listener, to string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

// signedBy returns sampleMessage signed by Postern with the given keys.
func signedBy(t *testing.T, keys []SigningKey) []byte {
	t.Helper()
	s, err := NewSigner(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Sign(sampleMessage)
	if err != nil || h == nil {
		t.Fatalf("sign: %v", err)
	}
	return append(h, sampleMessage...)
}

func TestInteropPosternSignedVerifiesWithDkimpy(t *testing.T) {
	t.Parallel()
	needTool(t, "python3-dkim", havePython("dkim"))
	keys := testKeys(t, "example.org")
	srv := dnstest.New(t, keyZone(t, keys))
	dir := t.TempDir()
	args := []string{filepath.Join("testdata", "dkimpy_verify.py"), srv.Addr()}
	var want []string
	for i, ks := range [][]SigningKey{keys[:1], keys[1:], keys} {
		signed := signedBy(t, ks)
		// A changed body must fail there too: the check is not vacuous.
		bad := bytes.Replace(signed, []byte("how are you"), []byte("how are we"), 1)
		for j, m := range [][]byte{signed, bad} {
			p := filepath.Join(dir, fmt.Sprintf("%d-%d.eml", i, j))
			os.WriteFile(p, m, 0o600)
			args = append(args, p)
		}
		want = append(want, strings.TrimSpace(strings.Repeat("ok ", len(ks))), strings.TrimSpace(strings.Repeat("fail ", len(ks))))
	}
	out, err := run(nil, systemPython, args...)
	if err != nil || string(out) != strings.Join(want, "\n")+"\n" {
		t.Errorf("dkimpy says\n%s\nwant\n%s\n%v", out, strings.Join(want, "\n"), err)
	}
}

func TestInteropDkimverifyCommand(t *testing.T) {
	t.Parallel()
	needTool(t, "dkimverify (python3-dkim)", haveCommand("dkimverify"))
	keys := testKeys(t, "example.org")
	srv := dnstest.New(t, keyZone(t, keys))
	j := newResolvJail(t, srv)
	verifyEach(t, j, keys, "dkimverify", func(out []byte) bool { return strings.Contains(string(out), "signature ok") },
		"Subject:  Hello", "Subject:  Howdy")
}

// verifyEach runs the verifier cmd in j on a message signed by each of
// keys alone, which it must accept (ok says whether its output does), and
// on that message with from changed to to, which it must refuse.
func verifyEach(t *testing.T, j *resolvJail, keys []SigningKey, cmd string, ok func(out []byte) bool, from, to string) {
	t.Helper()
	for i, k := range keys {
		signed := signedBy(t, keys[i:i+1])
		if out, err := j.run(signed, cmd); err != nil || !ok(out) {
			t.Errorf("%s: %s: %q %v", k.Algorithm(), cmd, out, err)
		}
		bad := bytes.Replace(signed, []byte(from), []byte(to), 1)
		if out, err := j.run(bad, cmd); err == nil {
			t.Errorf("%s: %s accepts %q changed to %q: %q", k.Algorithm(), cmd, from, to, out)
		}
	}
}

func TestInteropOpenDKIM(t *testing.T) {
	t.Parallel()
	needTool(t, "opendkim-testmsg (opendkim-tools)", haveCommand("opendkim-testmsg"))
	keys := testKeys(t, "example.org")
	srv := dnstest.New(t, keyZone(t, keys))
	j := newResolvJail(t, srv)
	// opendkim-testmsg prints nothing and exits 0 when the message
	// verifies.
	verifyEach(t, j, keys, "opendkim-testmsg", func(out []byte) bool { return len(out) == 0 },
		"how are you", "how are we")
	// Without the key record it fails: it did look the key up through
	// our DNS.
	srv.Remove("ed._domainkey.example.org")
	if out, err := j.run(signedBy(t, keys[:1]), "opendkim-testmsg"); err == nil {
		t.Errorf("opendkim-testmsg verifies without a key record: %q", out)
	}
	// And the other way: opendkim-testmsg signs with our RSA key. It
	// signs rsa-sha1 (it has no option for sha256), which RFC 8301 §3.1
	// forbids verifiers to accept: Postern must say permerror, and does
	// verify the rest of it (the key, the canonicalization) no further.
	out, err := run(sampleMessage, "opendkim-testmsg", "-C", "-d", "example.org", "-s", "rsa", "-k", filepath.Join("testdata", "rsa2048.pem"))
	if err != nil {
		t.Fatalf("opendkim-testmsg sign: %v", err)
	}
	out = bytes.ReplaceAll(bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	res := VerifyDKIM(context.Background(), srv.Resolver(), out, VerifyOptions{MaxSignatures: 5})
	if len(res) != 1 || res[0].Algorithm != "rsa-sha1" || res[0].Result != "permerror" {
		t.Errorf("OpenDKIM-signed (rsa-sha1): %+v\n%s", res, out)
	}
}

func TestInteropDkimpySignedVerifiesInPostern(t *testing.T) {
	t.Parallel()
	needTool(t, "python3-dkim", havePython("dkim"))
	keys := testKeys(t, "example.org")
	srv := dnstest.New(t, keyZone(t, keys))
	dir := t.TempDir()
	edFile, rsaFile := filepath.Join(dir, "ed"), filepath.Join(dir, "rsa.pem")
	os.WriteFile(edFile, []byte(base64.StdEncoding.EncodeToString(keys[0].Key.(ed25519.PrivateKey).Seed())), 0o600)
	os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(keys[1].Key.(*rsa.PrivateKey))}), 0o600)
	args := []string{filepath.Join("testdata", "dkimpy_sign.py"), "example.org"}
	var names []string
	for _, alg := range []struct{ name, sel, file string }{{"ed25519-sha256", "ed", edFile}, {"rsa-sha256", "rsa", rsaFile}} {
		for _, canon := range [][2]string{{"relaxed", "relaxed"}, {"simple", "simple"}, {"relaxed", "simple"}, {"simple", "relaxed"}} {
			args = append(args, strings.Join([]string{alg.sel, alg.name, alg.file, canon[0], canon[1]}, ","))
			names = append(names, alg.name+" "+canon[0]+"/"+canon[1])
		}
	}
	out, err := run(sampleMessage, systemPython, args...)
	if err != nil {
		t.Fatal(err)
	}
	msgs := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
	if len(msgs) != len(names) {
		t.Fatalf("%d messages from dkimpy", len(msgs))
	}
	for i, signed := range msgs {
		name := names[i]
		res := VerifyDKIM(context.Background(), srv.Resolver(), signed, VerifyOptions{MaxSignatures: 5})
		if len(res) != 1 || res[0].Result != "pass" || !strings.HasPrefix(name, res[0].Algorithm+" ") {
			t.Errorf("%s: %+v\n%s", name, res, signed)
		}
		bad := bytes.Replace(signed, []byte("how are you"), []byte("how are we"), 1)
		if res := VerifyDKIM(context.Background(), srv.Resolver(), bad, VerifyOptions{MaxSignatures: 5}); len(res) != 1 || res[0].Result != "fail" {
			t.Errorf("%s, changed body: %+v", name, res)
		}
	}
}

func TestInteropPyspf(t *testing.T) {
	t.Parallel()
	needTool(t, "python3-spf", havePython("spf"))
	srv := dnstest.New(t, rfc7208Zone())
	cmd := exec.Command(systemPython, filepath.Join("testdata", "pyspf_check.py"), srv.Addr())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	lines := newLineReader(stdout)
	for i, c := range spfCases {
		for name, rrs := range spfZone(c) {
			srv.Set(name, rrs...)
		}
		ours := CheckSPF(context.Background(), srv.Resolver(), netip.MustParseAddr(c.ip), "client.example.net", c.from(), "mailfrom")
		fmt.Fprintf(stdin, "%s %s client.example.net\n", c.ip, c.from())
		theirs, err := lines()
		if err != nil {
			t.Fatalf("pyspf: %v: %s", err, stderr.Bytes())
		}
		if theirs != ours.Result {
			t.Errorf("case %d %q from %s: pyspf %s, Postern %s (%s)", i, c.record, c.ip, theirs, ours.Result, ours.Reason)
		}
		for name := range c.extra {
			srv.Remove(name)
		}
	}
}

// newLineReader returns a function reading one line at a time, with a
// timeout.
func newLineReader(r io.Reader) func() (string, error) {
	ch := make(chan string)
	go func() {
		buf := make([]byte, 0, 256)
		one := make([]byte, 1)
		for {
			if _, err := r.Read(one); err != nil {
				close(ch)
				return
			}
			if one[0] == '\n' {
				ch <- string(buf)
				buf = buf[:0]
				continue
			}
			buf = append(buf, one[0])
		}
	}()
	return func() (string, error) {
		select {
		case l, ok := <-ch:
			if !ok {
				return "", io.EOF
			}
			return l, nil
		case <-time.After(20 * time.Second):
			return "", fmt.Errorf("timeout")
		}
	}
}
