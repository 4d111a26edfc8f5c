package smtpd

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ackNow makes the kernel acknowledge at once what it has received on
// c's TCP connection instead of delaying the ACK (TCP_QUICKACK).
//
// After a STARTTLS handshake the client speaks next (EHLO), but its
// TLS Finished has not been acknowledged: Go's server sends its session
// tickets with its own Finished, before the client's, so nothing goes
// back that could carry the ACK. A client with Nagle's algorithm on
// (Python's smtplib, most OpenSSL-based clients) then holds its EHLO
// until the delayed ACK fires, 40 ms later on Linux, on every STARTTLS
// session. Postfix, whose OpenSSL sends tickets after the client's
// Finished, shows no such stall.
func ackNow(c net.Conn) {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}
