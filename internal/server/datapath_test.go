package server

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"postern/internal/config"
	"postern/internal/delivery"
	"postern/internal/queue"
	"postern/internal/smtp"
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

// benchAliases is every address its own one mailbox.
type benchAliases struct{}

func (benchAliases) Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) (delivery.Expansion, error) {
	return delivery.Expansion{Mailboxes: []string{rcpt}}, nil
}
func (benchAliases) Mailbox(ctx context.Context, rcpt string) (string, bool) { return rcpt, true }

// BenchmarkDataPath is issue 17's reuse scenario in one process, without
// TLS: 8 clients, each an mx session carrying 50 messages of 10 KiB
// (MAIL, RCPT and DATA pipelined), for one local mailbox. One op is one
// message, from MAIL to its 250, and then to its mailbox:
//
//   - spool: into a real spool (group commit, fdatasync), not delivered;
//   - spool+runner: the spool and the queue runner delivering to a
//     Maildir, as serve wires them with delivery.direct_local off; the
//     benchmark ends when every message is delivered;
//   - direct: delivery.Direct in front of the spool, as serve wires it by
//     default: each message written to the Maildir before its 250.
//
// cpu-ns/op (the process's CPU a message, server and clients) is
// steadier than the wall time, which the disk's fsync latency dominates.
func BenchmarkDataPath(b *testing.B) {
	for _, mode := range []string{"spool", "spool+runner", "direct"} {
		b.Run(mode, func(b *testing.B) { benchDataPath(b, mode) })
	}
}

func benchDataPath(b *testing.B, mode string) {
	log := slog.New(slog.DiscardHandler)
	spool, err := spool.Open(spool.Options{Dir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer spool.Close()
	var (
		delivered atomic.Int64
		intake    smtpd.Spooler = spool
	)
	local := &delivery.Local{Aliases: benchAliases{}, Maildir: &delivery.Maildir{Root: benchMailRoot(b)}}
	isLocal := func(string) bool { return true }
	observe := func(r queue.Report) {
		if r.Outcome == queue.OutcomeDelivered {
			delivered.Add(1)
		}
	}
	switch mode {
	case "spool+runner":
		ctx, cancel := context.WithCancel(context.Background())
		runner := queue.NewRunner(spool, queue.RunnerOptions{Local: local, IsLocal: isLocal, Workers: config.DefaultDeliveryWorkers, Logger: log, Observe: observe})
		done := make(chan error, 1)
		go func() { done <- runner.Run(ctx) }()
		defer func() { cancel(); <-done }()
	case "direct":
		intake = &delivery.Direct{Local: local, Spool: spool, IsLocal: isLocal, Logger: log, Observe: observe}
	}
	srv := &smtpd.Server{
		Name: "bench", Role: smtpd.RoleMX, Hostname: "mx.example.test",
		Directory: benchDir{}, Spool: intake, Logger: log,
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
	if mode != "spool" {
		for delivered.Load() < int64(b.N) {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchMail is the Maildir root the DataPath benchmarks share, removed
// when the test binary exits (TestMain): on this machine's ext4, files
// created within 30 seconds of deleting thousands (a benchmark's
// TempDir) cost a scan each in openat (recently_deleted), half of the
// CPU of a benchmark that ran right after another.
var benchMail struct {
	once sync.Once
	dir  string
	err  error
}

func benchMailRoot(b *testing.B) string {
	benchMail.once.Do(func() { benchMail.dir, benchMail.err = os.MkdirTemp("", "postern-bench-mail-") })
	if benchMail.err != nil {
		b.Fatal(benchMail.err)
	}
	dir, err := os.MkdirTemp(benchMail.dir, "run-")
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchMail.dir != "" {
		os.RemoveAll(benchMail.dir)
	}
	os.Exit(code)
}

// cpuTime returns the user and system CPU time of the process so far, in
// nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
