package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/smtpd"
	"postern/internal/spool"
)

// benchDir is a Directory for the DATA path benchmark: one local domain,
// every address in it exists.
type benchDir struct{}

func (benchDir) IsLocalDomain(d string) bool { return d == "example.test" }
func (benchDir) RecipientExists(ctx context.Context, addr string) (bool, error) {
	return strings.HasSuffix(addr, "@example.test"), nil
}
func (benchDir) MaySendAs(ctx context.Context, user, addr string) (bool, error) { return true, nil }

// BenchmarkDataPath is issue 17's reuse scenario in one process, without
// TLS: 8 clients, each an mx session carrying 50 messages of 10 KiB
// (MAIL, RCPT and DATA pipelined), into a real spool (group commit,
// fdatasync) as serve wires it (the spool is the smtpd.Spooler). One op is one
// message, from MAIL to its 250.
func BenchmarkDataPath(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	spool, err := spool.Open(spool.Options{Dir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer spool.Close()
	srv := &smtpd.Server{
		Name: "bench", Role: smtpd.RoleMX, Hostname: "mx.example.test",
		Directory: benchDir{}, Spool: spool, Logger: log,
		Limits: smtpd.Limits{CommandTimeout: time.Minute, DataTimeout: time.Minute},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	line := strings.Repeat("x", 76) + "\r\n"
	msg := []byte("From: <a@example.net>\r\nTo: <bob@example.test>\r\nSubject: bench\r\n\r\n" +
		strings.Repeat(line, 10240/len(line)) + ".\r\n")
	cmds := []byte("MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.SetParallelism(4) // 8 clients on 2 cores
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var (
			c  net.Conn
			br *bufio.Reader
			n  int
		)
		expect := func(code string) error {
			for {
				l, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(l, code) {
					return fmt.Errorf("want %s, got %q, %v", code, l, err)
				}
				if l[3] == ' ' {
					return nil
				}
			}
		}
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		for pb.Next() {
			if c == nil {
				if c, err = net.Dial("tcp", l.Addr().String()); err != nil {
					b.Error(err)
					return
				}
				br = bufio.NewReader(c)
				c.Write([]byte("EHLO client.example\r\n"))
				if err := expect("220"); err != nil {
					b.Error(err)
					return
				}
				if err := expect("250"); err != nil {
					b.Error(err)
					return
				}
			}
			c.Write(cmds)
			for _, code := range []string{"250", "250", "354"} {
				if err := expect(code); err != nil {
					b.Error(err)
					return
				}
			}
			c.Write(msg)
			if err := expect("250"); err != nil {
				b.Error(err)
				return
			}
			if n++; n == 50 {
				c.Write([]byte("QUIT\r\n"))
				expect("221")
				c.Close()
				c, n = nil, 0
			}
		}
	})
	b.StopTimer()
	// The CPU the process (server and clients) spent a message: steadier
	// than the wall time, which the disk's fsync latency dominates.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(spool.Stats().Messages)/b.Elapsed().Seconds(), "msgs/s")
}

// cpuTime returns the user and system CPU time of the process so far, in
// nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
