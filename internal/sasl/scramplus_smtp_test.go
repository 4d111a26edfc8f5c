package sasl_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// smtpClient is a minimal SMTP client for SASL exchanges.
type smtpClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	cs   tls.ConnectionState
}

// dialTLS connects, does EHLO and STARTTLS, and EHLO again; it returns the
// AUTH line of the second EHLO reply.
func dialTLS(t *testing.T, e *env, maxVersion uint16) (*smtpClient, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &smtpClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.expect("220 ")
	c.cmd("EHLO client.example", "250 ")
	c.cmd("STARTTLS", "220 ")
	pem, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "mx.example.org", MaxVersion: maxVersion})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.br, c.cs = tc, bufio.NewReader(tc), tc.ConnectionState()
	reply := c.cmd("EHLO client.example", "250 ")
	for _, l := range strings.Split(reply, "\n") {
		if strings.HasPrefix(l, "250-AUTH ") || strings.HasPrefix(l, "250 AUTH ") {
			return c, l[4:]
		}
	}
	return c, ""
}

// expect reads a reply (all lines) and checks the last one's prefix.
func (c *smtpClient) expect(prefix string) string {
	c.t.Helper()
	var all []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (so far %q)", err, all)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	if last := all[len(all)-1]; !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("reply %q, want %q", all, prefix)
	}
	return strings.Join(all, "\n")
}

func (c *smtpClient) cmd(line, prefix string) string {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(prefix)
}

// challenge decodes a 334 reply.
func challenge(t *testing.T, reply string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(reply, "334 "))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSCRAMPlusSMTP authenticates with SCRAM-SHA-256-PLUS through a real
// session after STARTTLS, using xdg-go/scram's client, with tls-exporter
// on TLS 1.3 and tls-server-end-point on TLS 1.2; then with the binding of
// another TLS session, which must fail.
func TestSCRAMPlusSMTP(t *testing.T) {
	e := start(t, "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
	for _, c := range []struct {
		name    string
		version uint16
		bind    func(cs *tls.ConnectionState) (scram.ChannelBinding, error)
	}{
		{"TLS 1.3 tls-exporter", tls.VersionTLS13, scram.NewTLSExporterBinding},
		{"TLS 1.2 tls-server-end-point", tls.VersionTLS12, scram.NewTLSServerEndpointBinding},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, auth := dialTLS(t, e, c.version)
			if auth != "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN" {
				t.Fatalf("offered %q", auth)
			}
			cb, err := c.bind(&cl.cs)
			if err != nil {
				t.Fatal(err)
			}
			client, err := scram.SHA256.NewClient(alice, alicePass, "")
			if err != nil {
				t.Fatal(err)
			}
			conv := client.NewConversationWithChannelBinding(cb)
			first, _ := conv.Step("")
			reply := cl.cmd("AUTH SCRAM-SHA-256-PLUS "+base64.StdEncoding.EncodeToString([]byte(first)), "334 ")
			final, err := conv.Step(challenge(t, reply))
			if err != nil {
				t.Fatal(err)
			}
			reply = cl.cmd(base64.StdEncoding.EncodeToString([]byte(final)), "334 ")
			if _, err := conv.Step(challenge(t, reply)); err != nil || !conv.Valid() {
				t.Fatalf("server signature: %v", err)
			}
			cl.cmd("", "235 2.7.0")

			// A second session whose client binds to the first one's
			// channel (as a man in the middle relaying would): refused.
			other, _ := dialTLS(t, e, c.version)
			conv = client.NewConversationWithChannelBinding(cb)
			if c.version == tls.VersionTLS12 {
				// The end-point binding is per certificate, not per
				// session: use a wrong one to show it is checked.
				cb.Data = append([]byte(nil), cb.Data...)
				cb.Data[0] ^= 1
				conv = client.NewConversationWithChannelBinding(cb)
			}
			first, _ = conv.Step("")
			reply = other.cmd("AUTH SCRAM-SHA-256-PLUS "+base64.StdEncoding.EncodeToString([]byte(first)), "334 ")
			final, _ = conv.Step(challenge(t, reply))
			reply = other.cmd(base64.StdEncoding.EncodeToString([]byte(final)), "334 ")
			if msg := challenge(t, reply); msg != "e=channel-bindings-dont-match" {
				t.Errorf("server-final %q", msg)
			}
			other.cmd("*", "535 5.7.8")
		})
	}
	e.wantAuth(t, "SCRAM-SHA-256-PLUS", "success")
	e.wantAuth(t, "SCRAM-SHA-256-PLUS", "failure")

	// Downgrade: a client that supports binding but did not see -PLUS.
	cl, _ := dialTLS(t, e, tls.VersionTLS13)
	cl.cmd("AUTH SCRAM-SHA-256 "+base64.StdEncoding.EncodeToString([]byte("y,,n="+alice+",r=abcdef")), "535 5.7.8")
	// SCRAM-SHA-1 without binding still works for old clients.
	client, _ := scram.SHA1.NewClient(alice, alicePass, "")
	conv := client.NewConversation()
	first, _ := conv.Step("")
	reply := cl.cmd("AUTH SCRAM-SHA-1 "+base64.StdEncoding.EncodeToString([]byte(first)), "334 ")
	final, _ := conv.Step(challenge(t, reply))
	reply = cl.cmd(base64.StdEncoding.EncodeToString([]byte(final)), "334 ")
	if _, err := conv.Step(challenge(t, reply)); err != nil {
		t.Fatal(err)
	}
	cl.cmd("", "235 2.7.0")
}
