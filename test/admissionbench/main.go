// Command admissionbench measures what a ban saves: how many connections
// from a banned address a Postern listener refuses per second, and the
// server's CPU per refusal, against full TLS handshakes on the same
// listener. Postern's answer to a flood is to refuse at accept, before a
// TLS byte (DESIGN.md); this is the figure of that rule.
//
//	go run ./test/admissionbench [-d 5s] [-c 16] [-store memory|redis] [-redis 127.0.0.1:6390] [-nocache]
//
// It starts itself a second time as the server (so that the server's
// CPU, read from /proc, is the server's alone): a real smtpd.Server with
// role submissions (TLS from the first byte, port 465's role), the
// production TLS configuration (tlsconf, a self-signed ECDSA P-256
// certificate) and the admission gate over the chosen store, in which
// 127.0.1.0/24 is banned. Then, for -d each, on loopback:
//
//   - refused: clients from 127.0.1.1-254 connect and wait for the close
//     (a refused client on submissions gets no byte: no handshake);
//   - handshake: clients from 127.0.2.1-254 connect, do a full TLS
//     handshake (no resumption) and read the 220 greeting, then close.
//
// The loops are bounded in time and count, and only loopback is used.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/redisstore"
	"postern/internal/sasl"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/tlsconf"
)

func main() {
	serve := flag.Bool("serve", false, "run as the server (internal)")
	dur := flag.Duration("d", 5*time.Second, "length of each phase")
	conc := flag.Int("c", 16, "concurrent clients")
	maxN := flag.Int("n", 500000, "most connections per phase")
	store := flag.String("store", "memory", "admission store: memory or redis")
	redisAddr := flag.String("redis", "127.0.0.1:6390", "Redis server for -store redis")
	noCache := flag.Bool("nocache", false, "with -store redis, turn the ban cache off (a round trip per lookup)")
	flag.Parse()
	var err error
	if *serve {
		err = runServer(*store, *redisAddr, *noCache)
	} else {
		err = runBench(*dur, *conc, *maxN, *store, *redisAddr, *noCache)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "admissionbench:", err)
		os.Exit(1)
	}
}

// bannedNet is the range banned in the server's store.
func bannedNet() netip.Prefix { return netip.MustParsePrefix("127.0.1.0/24") }

// runServer serves until stdin closes, after printing its address.
func runServer(storeKind, redisAddr string, noCache bool) error {
	dir, err := os.MkdirTemp("", "admissionbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, err := tlsconf.EnsureSelfSigned(dir, []string{"mail.example.test"}, time.Now())
	if err != nil {
		return err
	}
	certs, err := tlsconf.LoadCerts(certFile, keyFile)
	if err != nil {
		return err
	}
	var st admission.Store = admission.NewMemoryStore()
	if storeKind == "redis" {
		opts := redisstore.Options{Addr: redisAddr, Prefix: fmt.Sprintf("admissionbench:%d:", os.Getpid())}
		if noCache {
			opts.BanCacheTTL = -1
		}
		rs, err := redisstore.New(opts)
		if err != nil {
			return err
		}
		defer rs.Close()
		if err := rs.Ping(context.Background()); err != nil {
			return err
		}
		defer rs.DeleteBan(context.Background(), bannedNet())
		st = rs
	}
	now := time.Now()
	if err := st.PutBan(context.Background(), admission.Ban{Prefix: bannedNet(), Until: now.Add(time.Hour),
		Created: now, Reason: "benchmark", Manual: true}); err != nil {
		return err
	}
	// The caps and rates would refuse the handshake clients (all from
	// one /24): off (the zero GateOptions), so that only the ban refuses.
	gate := admission.NewGate(st, admission.GateOptions{})
	srv := &smtpd.Server{
		Name:      "bench",
		Role:      smtpd.RoleSubmissions,
		Hostname:  "mail.example.test",
		TLSConfig: tlsconf.ServerConfig(certs, tlsconf.Policy{MinVersion: tls.VersionTLS12}),
		Directory: nobody{},
		Auth:      &sasl.Passwords{Check: func(context.Context, string, string) (string, error) { return "", errors.New("no") }},
		Spool:     nobody{},
		Admitter:  gate,
		Logger:    slog.New(slog.DiscardHandler),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(l)
	fmt.Println(l.Addr())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return nil
}

// nobody is a Directory and Spooler that knows no one and keeps nothing.
type nobody struct{}

func (nobody) IsLocalDomain(string) bool                             { return false }
func (nobody) RecipientExists(context.Context, string) (bool, error) { return false, nil }
func (nobody) MaySendAs(context.Context, string, string) (bool, error) {
	return false, nil
}
func (nobody) PutMessage(context.Context, *smtp.Envelope, *smtp.Message) error {
	return errors.New("no")
}
func (nobody) CreateFile(string) (smtp.SpoolFile, error) { return nil, errors.New("no") }

// phase is the outcome of one phase.
type phase struct {
	name     string
	n        int64
	errs     int64
	elapsed  time.Duration
	cpuTicks int64 // the server's user+system CPU, in 1/100 s
}

func (p phase) rate() float64 { return float64(p.n) / p.elapsed.Seconds() }

// cpuPer is the server's CPU per connection.
func (p phase) cpuPer() time.Duration {
	if p.n == 0 {
		return 0
	}
	return time.Duration(p.cpuTicks) * 10 * time.Millisecond / time.Duration(p.n)
}

func runBench(d time.Duration, c, maxN int, storeKind, redisAddr string, noCache bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-serve", "-store", storeKind, "-redis", redisAddr, "-nocache="+strconv.FormatBool(noCache))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	addr := strings.TrimSpace(line)
	pid := cmd.Process.Pid

	refused := run("refused", addr, pid, d, c, maxN, 1, refuseOnce)
	handshake := run("handshake", addr, pid, d, c, maxN, 2, handshakeOnce)
	if noCache {
		storeKind += " (ban cache off)"
	}
	fmt.Printf("store: %s, %d concurrent clients, %s per phase\n", storeKind, c, d)
	fmt.Println("| phase | connections | errors | per second | server CPU per connection |")
	fmt.Println("|---|---|---|---|---|")
	for _, p := range []phase{refused, handshake} {
		fmt.Printf("| %s | %d | %d | %.0f | %.1f µs |\n", p.name, p.n, p.errs, p.rate(), float64(p.cpuPer().Nanoseconds())/1000)
	}
	if handshake.n > 0 && refused.n > 0 {
		fmt.Printf("refusals per second / handshakes per second: %.1fx; CPU per handshake / CPU per refusal: %.1fx\n",
			refused.rate()/handshake.rate(), float64(handshake.cpuPer())/float64(max(refused.cpuPer(), 1)))
	}
	return nil
}

// run runs one phase: c workers each connecting from 127.0.net.x
// (x cycling through 1-254) and calling once, until d or maxN.
func run(name, addr string, pid int, d time.Duration, c, maxN int, net3 byte,
	once func(addr string, src net.IP) error) phase {
	var n, errs atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTicks(pid)
	start := time.Now()
	deadline := start.Add(d)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline) && n.Load()+errs.Load() < int64(maxN); i += c {
				src := net.IPv4(127, 0, net3, byte(1+i%254))
				if err := once(addr, src); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "%s: first error: %v\n", name, err)
					}
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return phase{name: name, n: n.Load(), errs: errs.Load(), elapsed: elapsed, cpuTicks: cpuTicks(pid) - cpu0}
}

// dial connects from src; the client resets on close (no TIME_WAIT
// left on our side).
func dial(addr string, src net.IP) (*net.TCPConn, error) {
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetLinger(0)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	return tc, nil
}

// refuseOnce connects from a banned address and expects the close,
// without a byte.
func refuseOnce(addr string, src net.IP) error {
	c, err := dial(addr, src)
	if err != nil {
		return err
	}
	defer c.Close()
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		return fmt.Errorf("a refused client got data %q", b[:n])
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("not closed: %v", err)
	}
	return nil
}

// handshakeOnce does a full TLS handshake and reads the greeting.
func handshakeOnce(addr string, src net.IP) error {
	c, err := dial(addr, src)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err := tc.Handshake(); err != nil {
		return err
	}
	l, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "220 ") {
		return fmt.Errorf("greeting %q, %v", l, err)
	}
	return nil
}

// cpuTicks returns the user and system CPU time of process pid, in
// clock ticks (USER_HZ, 100 a second on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
