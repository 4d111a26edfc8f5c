package redistickets

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"postern/internal/tlsconf"
)

func tlsconfRoots(t *testing.T, c *tlsconf.Certs) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Leaf())
	return p
}

// handshake connects cli to a server with srv over loopback, reads one
// byte so the client takes the session ticket, and reports DidResume.
func handshake(t *testing.T, srv, cli *tls.Config) bool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		if tc.Handshake() == nil {
			tc.Write([]byte("x"))
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cli)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1))
	return c.ConnectionState().DidResume
}
