package smtpd

import (
	"bufio"
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// A client with Nagle's algorithm on (as Python's smtplib and most
// OpenSSL-based clients are) must not wait for a delayed ACK before its
// first command after STARTTLS: the server acknowledges the client's TLS
// Finished at once. Without that, EHLO after STARTTLS took 40 ms on every
// session (Linux's delayed-ACK timer); the median of five is far below.
func TestNoDelayedAckStallAfterSTARTTLS(t *testing.T) {
	f := newFixture(t, RoleSubmission)
	var times []time.Duration
	for range 5 {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).SetNoDelay(false)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		reply := func(prefix string) {
			t.Helper()
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading reply %q: %v", prefix, err)
				}
				if !strings.HasPrefix(line, prefix) {
					t.Fatalf("reply %q, want %q", line, prefix)
				}
				if len(line) > 3 && line[3] == ' ' {
					return
				}
			}
		}
		reply("220")
		conn.Write([]byte("EHLO client.example\r\n"))
		reply("250")
		conn.Write([]byte("STARTTLS\r\n"))
		reply("220")
		tc := tls.Client(conn, clientTLSConfig())
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		br = bufio.NewReader(tc)
		start := time.Now()
		tc.Write([]byte("EHLO client.example\r\n"))
		reply("250")
		times = append(times, time.Since(start))
		tc.Write([]byte("QUIT\r\n"))
		reply("221")
		conn.Close()
	}
	slices.Sort(times)
	if times[2] >= 30*time.Millisecond {
		t.Errorf("EHLO after STARTTLS took %v (median of %v): the client waited for a delayed ACK", times[2], times)
	}
}
