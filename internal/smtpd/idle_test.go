package smtpd

import (
	"runtime"
	"testing"
	"time"
)

// A TLS session gives its read buffer back while it waits for a command
// and takes one again when the client writes: commands split over
// several writes, pipelined ones, and a whole transaction still work. A
// plaintext session keeps its buffer (no extra read per command).
func TestIdleTLSSessionReleasesReadBuffer(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("NOOP", "250 ")
	if n := f.srv.idleWaits.Load(); n != 0 {
		t.Errorf("a plaintext session gave its buffer back %d times", n)
	}
	c.startTLS()
	c.do("EHLO client.example", "250 ")
	before := f.srv.idleWaits.Load()
	if before == 0 {
		t.Fatalf("no wait without a buffer for the EHLO after STARTTLS")
	}
	c.raw("NO")
	time.Sleep(20 * time.Millisecond) // the server now holds one byte, no buffer
	c.raw("OP\r\n")
	c.expect("250 ")
	c.raw("NOOP\r\nNOOP\r\nNOOP\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.script(
		step{"MAIL FROM:<a@example.net>", "250 "},
		step{"RCPT TO:<bob@example.org>", "250 "},
		step{"DATA", "354 "},
		step{message("From: a@example.net") + ".", "250 2.0.0"},
	)
	// The split NOOP, the first pipelined one, MAIL, RCPT and DATA each
	// came while the session had no buffer (the message itself is read
	// by the DATA reader, which never gives it back).
	if got := f.srv.idleWaits.Load() - before; got < 5 {
		t.Errorf("%d waits without a buffer after the EHLO, want one per command the client sent after a reply", got)
	}
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled, want 1", n)
	}
	c.do("QUIT", "221 ")
}

// idleTLSMemory opens n sessions that each did STARTTLS and EHLO and
// now wait for a command, and returns the goroutine stack memory each
// holds (runtime.MemStats.StackInuse after two collections, which free
// the stacks of ended goroutines and shrink the others as far as they
// can) and the live heap each adds, the client's end included (the
// clients run in this process).
func idleTLSMemory(t testing.TB, f *fixture, n int) (stack, heap float64) {
	t.Helper()
	measure := func() (stack, heap uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse, ms.HeapAlloc
	}
	stack0, heap0 := measure()
	clients := make([]*client, n)
	for i := range clients {
		c := f.dial()
		c.do("EHLO client.example", "250 ")
		c.startTLS()
		c.do("EHLO client.example", "250 ")
		clients[i] = c
	}
	stack1, heap1 := measure()
	for _, c := range clients {
		c.do("NOOP", "250 ") // each still answers
	}
	return (float64(stack1) - float64(stack0)) / float64(n), (float64(heap1) - float64(heap0)) / float64(n)
}

// BenchmarkIdleTLSSession opens b.N idle sessions after STARTTLS and
// reports what each holds: the server's goroutine stack, and the live
// heap of both ends (the client's tls.Conn and buffers included).
func BenchmarkIdleTLSSession(b *testing.B) {
	f := newFixture(b, RoleSubmission)
	stack, heap := idleTLSMemory(b, f, b.N)
	b.ReportMetric(stack, "stack-B/session")
	b.ReportMetric(heap, "heap-B/session+client")
}

// BenchmarkTLSCommand measures one command round trip (NOOP and its 250)
// in a session after STARTTLS over loopback: what a TLS session's wait
// for its next command costs, a fresh goroutine included.
func BenchmarkTLSCommand(b *testing.B) {
	f := newFixture(b, RoleSubmission)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.startTLS()
	c.do("EHLO client.example", "250 ")
	b.ReportAllocs()
	for b.Loop() {
		c.do("NOOP", "250 ")
	}
}
