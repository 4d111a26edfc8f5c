package tlsconf

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// starttlsServer serves a minimal STARTTLS dialogue on l: "220" greeting,
// "STARTTLS" -> "220", the TLS handshake, then an echo of each line until
// "QUIT".
func starttlsServer(t *testing.T, l net.Listener, cfg *tls.Config) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			r := bufio.NewReader(c)
			fmt.Fprintf(c, "220 test ESMTP\r\n")
			line, err := r.ReadString('\n')
			if err != nil || line != "STARTTLS\r\n" {
				return
			}
			fmt.Fprintf(c, "220 go ahead\r\n")
			tc := tls.Server(c, cfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			tr := bufio.NewReader(tc)
			for {
				line, err := tr.ReadString('\n')
				if err != nil {
					return
				}
				if line == "QUIT\r\n" {
					fmt.Fprintf(tc, "221 bye\r\n")
					return
				}
				fmt.Fprintf(tc, "250 %s", line)
			}
		}()
	}
}

// session runs one STARTTLS session with lines exchanges, pausing pause
// between them, and returns the serial of the certificate served.
func session(addr string, cli *tls.Config, lines int, pause time.Duration) (*big.Int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
		return nil, fmt.Errorf("greeting %q: %v", l, err)
	}
	fmt.Fprintf(c, "STARTTLS\r\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
		return nil, fmt.Errorf("starttls %q: %v", l, err)
	}
	tc := tls.Client(c, cli)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	serial := tc.ConnectionState().PeerCertificates[0].SerialNumber
	tr := bufio.NewReader(tc)
	for i := range lines {
		fmt.Fprintf(tc, "NOOP %d\r\n", i)
		if l, err := tr.ReadString('\n'); err != nil || l != fmt.Sprintf("250 NOOP %d\r\n", i) {
			return nil, fmt.Errorf("line %d: %q: %v", i, l, err)
		}
		time.Sleep(pause)
	}
	fmt.Fprintf(tc, "QUIT\r\n")
	if l, err := tr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "221 ") {
		return nil, fmt.Errorf("quit %q: %v", l, err)
	}
	return serial, nil
}

// TestReloadUnderLoad replaces the certificate files several times (by
// rename, as certbot and editors do) while concurrent STARTTLS sessions
// run, some spanning every replacement: no session fails, and new
// handshakes get the new certificate once the watcher has reloaded.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "cert.pem", "key.pem", p.leaf.key, p.leaf, p.inter)
	certs, err := OpenCerts(Options{
		Pairs: []Pair{{cf, kf}},
		Check: CheckOptions{Roots: p.roots, Hostnames: []string{"mail.example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reloads, refused atomic.Int64
	if err := Watch(ctx, certs.Files(), 100*time.Millisecond, func() {
		if err := certs.Reload(); err != nil {
			refused.Add(1)
			t.Logf("reload refused (old certificate kept): %v", err)
			return
		}
		reloads.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go starttlsServer(t, l, ServerConfig(certs, Policy{}))
	cli := &tls.Config{RootCAs: p.roots, ServerName: "mail.example.com"}

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var latest *big.Int // the serial the last new handshake saw
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				lines, pause := 3, time.Millisecond
				if w < 4 { // long sessions that span reloads
					lines, pause = 40, 50*time.Millisecond
				}
				s, err := session(l.Addr().String(), cli, lines, pause)
				if err != nil {
					failed.Add(1)
					t.Errorf("session: %v", err)
					continue
				}
				ok.Add(1)
				if w >= 4 {
					mu.Lock()
					latest = s
					mu.Unlock()
				}
			}
		}()
	}
	const replacements = 5
	for i := range replacements {
		time.Sleep(300 * time.Millisecond)
		next := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}})
		writePair(t, dir, "cert.pem", "key.pem", next.key, next, p.inter)
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			s := latest
			mu.Unlock()
			if s != nil && s.Cmp(next.x.SerialNumber) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replacement %d: new handshakes still see serial %x, want %x", i+1, s, next.x.SerialNumber)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d sessions, %d failed, %d reloads, %d refused", ok.Load(), failed.Load(), reloads.Load(), refused.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d sessions failed", failed.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d sessions: not much of a load", ok.Load())
	}
}
