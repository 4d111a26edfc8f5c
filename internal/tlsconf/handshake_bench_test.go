package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/testcert"
)

// BenchmarkHandshakeFloor measures the handshake floor of issue 17: the
// server's own CPU for the TLS handshake a one-message session needs,
// with the server tls.Config Postern's listeners use (ServerConfig) and
// an ECDSA P-256 certificate, as the load generator's scenarios see it:
//
//   - full: a full TLS 1.3 handshake (certificate and signature);
//   - resumed: a TLS 1.3 resumption with a session ticket (PSK with
//     (EC)DHE, RFC 8446 §4.2.9: the key exchange still runs);
//
// each with X25519MLKEM768 (the hybrid post-quantum key exchange Go's
// clients offer first and Postern prefers) and with X25519 alone. One op
// is one handshake, the server's session ticket included (it sends one
// after every handshake, and the client reads it, as a real client's
// first read does). Client and server run in this process over
// net.Pipe; the server's side runs on a goroutine locked to its thread,
// so server-cpu-µs/handshake is that thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID): the server's handshake alone, without the
// client's. cpu-µs/handshake is the whole process (both sides, and the
// garbage collector). Run:
//
//	go test -run '^$' -bench HandshakeFloor -benchmem -count 6 ./internal/tlsconf/
func BenchmarkHandshakeFloor(b *testing.B) {
	srv, ca := floorServerConfig(b)
	for _, kx := range []struct {
		name  string
		curve tls.CurveID
	}{{"X25519MLKEM768", tls.X25519MLKEM768}, {"X25519", tls.X25519}} {
		for _, resume := range []bool{false, true} {
			name := kx.name + "/full"
			if resume {
				name = kx.name + "/resumed"
			}
			b.Run(name, func(b *testing.B) {
				cli := &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com", CurvePreferences: []tls.CurveID{kx.curve}}
				if resume {
					cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
					floorHandshake(b, srv, cli, kx.curve, false) // the first ticket
				}
				b.ReportAllocs()
				var server time.Duration
				cpu := cpuTime()
				for b.Loop() {
					server += floorHandshake(b, srv, cli, kx.curve, resume)
				}
				report(b, cpu)
				b.ReportMetric(float64(server.Microseconds())/float64(b.N), "server-cpu-µs/handshake")
			})
		}
	}
}

// floorServerConfig returns the server tls.Config of Postern's listeners
// (ServerConfig) with an ECDSA P-256 certificate for mail.example.com
// issued by the returned CA.
func floorServerConfig(b *testing.B) (*tls.Config, *testcert.CA) {
	ca := testcert.NewCA()
	dir := b.TempDir()
	p := Pair{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	testcert.WriteFiles(b, ca.Issue(testcert.Spec{DNSNames: []string{"mail.example.com"}}), p.CertFile, p.KeyFile)
	certs, err := OpenCerts(Options{Pairs: []Pair{p}, Check: CheckOptions{Roots: ca.Pool}})
	if err != nil {
		b.Fatal(err)
	}
	return ServerConfig(certs, Policy{}), ca
}

// floorHandshake runs one TLS handshake over net.Pipe, checks its key
// exchange and resumption, and returns the server side's thread CPU time
// (handshake and ticket).
func floorHandshake(b *testing.B, srv, cli *tls.Config, curve tls.CurveID, resumed bool) time.Duration {
	c1, c2 := net.Pipe()
	type result struct {
		cpu time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := threadCPU()
		s := tls.Server(c2, srv)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{'x'}) // after the ticket
		}
		cpu := threadCPU() - start
		c2.Close() // the pipe, not the TLS connection: a close_notify nobody reads would wait
		done <- result{cpu, err}
	}()
	c := tls.Client(c1, cli)
	err := c.Handshake()
	if err == nil {
		_, err = io.ReadFull(c, make([]byte, 1)) // reads the ticket first
	}
	c1.Close()
	r := <-done
	if err != nil || r.err != nil {
		b.Fatalf("handshake: client %v, server %v", err, r.err)
	}
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS13 || st.CurveID != curve || st.DidResume != resumed {
		b.Fatalf("got TLS %x, key exchange %v, resumed %v; want 1.3, %v, %v", st.Version, st.CurveID, st.DidResume, curve, resumed)
	}
	return r.cpu
}

// threadCPU returns the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// cpuTime returns the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds the handshake rate and the CPU per handshake since cpu.
func report(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/handshake")
}
