package smtp_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/testcert"
)

const clientTimeout = 2 * time.Second

// scripted runs server on one end of a loopback connection and returns a
// Client on the other; the server's error is reported when the test ends.
func scripted(t *testing.T, server func(c net.Conn, r *bufio.Reader) error) *smtp.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		l.Close()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- server(c, bufio.NewReader(c))
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(nc)
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("server: %v", err)
		}
	})
	return c
}

// expect reads one line from the client and fails unless it is want.
func expect(r *bufio.Reader, want string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != want+"\r\n" {
		return errors.New("got " + line + ", want " + want)
	}
	return nil
}

// The replies come from ReadReply and the commands go out pipelined
// when sent together; EHLO's extensions are recorded; 421 breaks the
// session.
func TestClientSession(t *testing.T) {
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		io.WriteString(c, "220 mx.test ESMTP\r\n")
		if err := expect(r, "EHLO client.test"); err != nil {
			return err
		}
		io.WriteString(c, "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
		for _, want := range []string{"MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>"} {
			if err := expect(r, want); err != nil {
				return err
			}
		}
		io.WriteString(c, "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n421 4.3.2 going away\r\n")
		return nil
	})
	if rep, err := c.Read(clientTimeout); err != nil || rep.Code != 220 {
		t.Fatalf("greeting: %v %v", rep, err)
	}
	if rep, err := c.Hello(clientTimeout, "EHLO", "client.test"); err != nil || rep.Code != 250 {
		t.Fatalf("EHLO: %v %v", rep, err)
	}
	if p, ok := c.Ext("SIZE"); !ok || p != "1000" {
		t.Errorf("SIZE = %q, %v", p, ok)
	}
	if _, ok := c.Ext("STARTTLS"); ok {
		t.Error("STARTTLS offered")
	}
	if err := c.Send(clientTimeout, "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"250 2.1.0 ok", "550 5.1.1 no such user"} {
		if rep, err := c.Read(clientTimeout); err != nil || rep.String() != want {
			t.Errorf("reply %v %v, want %s", rep, err, want)
		}
	}
	if c.Broken() {
		t.Error("broken before the 421")
	}
	if rep, err := c.Read(clientTimeout); err != nil || rep.Code != 421 || !c.Broken() || c.Last().Code != 421 {
		t.Errorf("421: %v %v, broken %v", rep, err, c.Broken())
	}
}

// Data dot-stuffs, makes every line end in CRLF and ends with ".".
func TestClientData(t *testing.T) {
	got := make(chan string, 1)
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		var b strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if line == ".\r\n" {
				got <- b.String()
				return nil
			}
			b.WriteString(line)
		}
	})
	m := &smtp.Message{Header: []byte("Subject: x\r\n\r\n"), Body: smtp.BodyBytes([]byte(".dot\nbare LF\rbare CR\r\nlast"))}
	if err := c.Data(clientTimeout, m); err != nil {
		t.Fatal(err)
	}
	if want := "Subject: x\r\n\r\n..dot\r\nbare LF\r\nbare CR\r\nlast\r\n"; <-got != want {
		t.Errorf("content differs from %q", want)
	}
}

// Bytes after the 220 to STARTTLS are never read as replies: the session
// is abandoned (ErrInjected). Without them, the handshake is made and
// what was learnt in plaintext is forgotten.
func TestClientStartTLS(t *testing.T) {
	cert, roots := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.test"}})
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		if err := expect(r, "STARTTLS"); err != nil {
			return err
		}
		io.WriteString(c, "220 go ahead\r\n250 injected\r\n")
		return nil
	})
	if _, err := c.StartTLS(context.Background(), clientTimeout, &tls.Config{RootCAs: roots, ServerName: "mx.test"}); !errors.Is(err, smtp.ErrInjected) || !c.Broken() {
		t.Errorf("injection: %v, broken %v; want ErrInjected", err, c.Broken())
	}

	c = scripted(t, func(c net.Conn, r *bufio.Reader) error {
		if err := expect(r, "STARTTLS"); err != nil {
			return err
		}
		io.WriteString(c, "220 go ahead\r\n")
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		tr := bufio.NewReader(tc)
		if err := expect(tr, "EHLO client.test"); err != nil {
			return err
		}
		io.WriteString(tc, "250 mx.test\r\n")
		return nil
	})
	if rep, err := c.StartTLS(context.Background(), clientTimeout, &tls.Config{RootCAs: roots, ServerName: "mx.test"}); err != nil || rep.Code != 220 || c.TLS() == nil {
		t.Fatalf("STARTTLS: %v %v, TLS %v", rep, err, c.TLS())
	}
	if rep, err := c.Hello(clientTimeout, "EHLO", "client.test"); err != nil || rep.Code != 250 {
		t.Errorf("EHLO over TLS: %v %v", rep, err)
	}

	c = scripted(t, func(c net.Conn, r *bufio.Reader) error {
		if err := expect(r, "STARTTLS"); err != nil {
			return err
		}
		io.WriteString(c, "220 go ahead\r\n")
		tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake() // the client refuses it
		return nil
	})
	var he *smtp.HandshakeError
	if _, err := c.StartTLS(context.Background(), clientTimeout, &tls.Config{ServerName: "mx.test"}); !errors.As(err, &he) {
		t.Errorf("untrusted certificate: %v, want a *HandshakeError", err)
	}
}

// A context's end interrupts a blocked read, and the session is broken.
func TestClientWatch(t *testing.T) {
	block := make(chan struct{})
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		<-block
		return nil
	})
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	stop := c.Watch(ctx)
	defer stop()
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Read(time.Minute); err == nil || !c.Broken() || !c.Canceled() {
		t.Errorf("read after cancel: %v, broken %v, canceled %v", err, c.Broken(), c.Canceled())
	}
}

// Bdat sends the message as one chunk of the size it counted, with
// CRLF line endings and no dot-stuffing, and reads nothing.
func TestClientBdat(t *testing.T) {
	got := make(chan string, 1)
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		var n int
		if _, err := fmt.Sscanf(line, "BDAT %d LAST\r\n", &n); err != nil {
			return fmt.Errorf("command %q: %v", line, err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		if err := expect(r, "QUIT"); err != nil {
			return err
		}
		got <- string(b)
		return nil
	})
	m := &smtp.Message{Header: []byte("Subject: x\r\n\r\n"), Body: smtp.BodyBytes([]byte(".dot\nbare LF\rbare CR\r\nlast"))}
	if err := c.Bdat(clientTimeout, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(clientTimeout, "QUIT"); err != nil {
		t.Fatal(err)
	}
	if want := "Subject: x\r\n\r\n.dot\r\nbare LF\r\nbare CR\r\nlast\r\n"; <-got != want {
		t.Errorf("content differs from %q", want)
	}
}

// flipFile is a file whose content changes after it was read once.
type flipFile struct{ reads int }

func (f *flipFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads++
	c := byte('x')
	if f.reads > 1 {
		c = '\n' // each becomes CRLF: more octets than counted
	}
	for i := range p {
		p[i] = c
	}
	return len(p), nil
}

// A message that gives more octets than Bdat counted is cut at the end
// of the chunk: the server never reads the excess as commands, and the
// Client is broken.
func TestClientBdatOverrun(t *testing.T) {
	got := make(chan string, 1)
	c := scripted(t, func(c net.Conn, r *bufio.Reader) error {
		b, err := io.ReadAll(r)
		got <- string(b)
		return err
	})
	m := &smtp.Message{Header: []byte("S: x\r\n\r\n"), Body: smtp.BodyFile(&flipFile{}, 0, 4)}
	if err := c.Bdat(clientTimeout, m); !errors.Is(err, smtp.ErrChunkChanged) || !c.Broken() {
		t.Fatalf("Bdat = %v, broken %v", err, c.Broken())
	}
	c.Close()
	if g, want := <-got, "BDAT 14 LAST\r\nS: x\r\n\r\n\r\n\r\n\r\n"; g != want {
		t.Errorf("server got %q, want %q", g, want)
	}
}
