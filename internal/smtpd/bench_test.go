package smtpd

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/internal/smtp"
)

// benchServer is the plaintext mx Server the benchmarks talk to: it
// spools nothing and logs nothing.
func benchServer() *Server {
	return &Server{
		Name:      "bench",
		Role:      RoleMX,
		Hostname:  testHost,
		Limits:    Limits{CommandTimeout: 10 * time.Second},
		Directory: newTestDir(),
		Spool:     discardSpool{},
		Logger:    slog.New(slog.DiscardHandler),
	}
}

// BenchmarkSession runs one plaintext mx session per iteration over
// net.Pipe: EHLO, MAIL, RCPT and DATA pipelined, a 10 KiB message, QUIT.
func BenchmarkSession(b *testing.B) {
	srv := benchServer()
	line := strings.Repeat("x", 76) + "\r\n"
	msg := "From: a@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat(line, 10240/len(line)) + ".\r\n"
	cmds := []byte("EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	// Byte slices, made once: io.WriteString on a net.Pipe would copy the
	// 10 KiB message every iteration and count it against the server.
	msgb := []byte(msg)
	b.SetBytes(int64(len(msg)))
	benchSessions(b, srv, func(client net.Conn, br *bufio.Reader) {
		client.Write(cmds)
		for _, c := range []string{"250", "250", "250", "354"} {
			expectCode(b, br, c)
		}
		client.Write(msgb)
		expectCode(b, br, "250")
	})
}

// benchSessions runs one session with srv per iteration over net.Pipe:
// after the greeting, talk sends the transaction and reads its replies;
// then QUIT.
func benchSessions(b *testing.B, srv *Server, talk func(client net.Conn, br *bufio.Reader)) {
	quit := []byte("QUIT\r\n")
	b.ReportAllocs()
	br := bufio.NewReader(nil)
	for b.Loop() {
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() { srv.serveConn(server); close(done) }()
		br.Reset(client)
		expectCode(b, br, "220")
		talk(client, br)
		client.Write(quit)
		expectCode(b, br, "221")
		client.Close()
		<-done
	}
}

func expectCode(b *testing.B, br *bufio.Reader, code string) {
	for {
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, code) {
			b.Fatalf("want %s, got %q, %v", code, l, err)
		}
		if l[3] == ' ' {
			return
		}
	}
}

type discardSpool struct{}

func (discardSpool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	return nil
}
func (discardSpool) CreateFile(id string) (smtp.SpoolFile, error) {
	return nil, errors.New("discardSpool: no files")
}

// BenchmarkSessionBdat is BenchmarkSession with the message sent with
// BDAT (RFC 3030): in one BDAT LAST chunk, as Postern and Dovecot send
// it, and in 64-octet chunks, which measures what each chunk costs.
func BenchmarkSessionBdat(b *testing.B) {
	for _, chunk := range []int{0, 64} {
		name := "one-chunk"
		if chunk > 0 {
			name = strconv.Itoa(chunk) + "-octet-chunks"
		}
		b.Run(name, func(b *testing.B) { benchBdat(b, chunk) })
	}
}

func benchBdat(b *testing.B, chunk int) {
	srv := benchServer()
	line := strings.Repeat("x", 76) + "\r\n"
	msg := "From: a@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat(line, 10240/len(line))
	if chunk == 0 {
		chunk = len(msg)
	}
	var wire strings.Builder
	wire.WriteString("EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n")
	chunks := 0
	for rest := msg; rest != ""; chunks++ {
		n := min(chunk, len(rest))
		wire.WriteString("BDAT " + strconv.Itoa(n))
		if n == len(rest) {
			wire.WriteString(" LAST")
		}
		wire.WriteString("\r\n" + rest[:n])
		rest = rest[n:]
	}
	in := []byte(wire.String())
	b.SetBytes(int64(len(msg)))
	benchSessions(b, srv, func(client net.Conn, br *bufio.Reader) {
		go client.Write(in) // the replies come as the chunks go in
		for _, c := range []string{"250", "250", "250"} {
			expectCode(b, br, c)
		}
		for range chunks {
			expectCode(b, br, "250")
		}
	})
	b.ReportMetric(float64(chunks), "chunks/op")
}
