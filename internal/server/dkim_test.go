package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/config"
	"postern/internal/dns/dnstest"
	"postern/internal/mailauth"
	"postern/internal/smtp"
	"postern/internal/smtpd"
)

// memSpool and memDir are the smallest smtpd backends.
type memSpool struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (s *memSpool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	data, err := io.ReadAll(msg.Reader())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, data)
	return nil
}

// CreateFile refuses: the tests' messages are small and stay in memory.
func (s *memSpool) CreateFile(id string) (smtp.SpoolFile, error) {
	return nil, errors.New("memSpool: no files")
}

// serveMX starts an mx listener on loopback with dir and filter, until
// the test ends, and returns its address and spool.
func serveMX(t *testing.T, hostname string, dir smtpd.Directory, filter smtpd.Filter) (string, *memSpool) {
	t.Helper()
	spool := &memSpool{}
	s := &smtpd.Server{Name: "mx", Role: smtpd.RoleMX, Hostname: hostname, Directory: dir, Spool: spool, Filter: filter, Logger: discard()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return l.Addr().String(), spool
}

type memDir struct{}

func (memDir) IsLocalDomain(d string) bool { return d == "example.org" }
func (memDir) RecipientExists(ctx context.Context, addr string) (bool, error) {
	return true, nil
}
func (memDir) MaySendAs(ctx context.Context, user, addr string) (bool, error) { return true, nil }

// TestMXFilterSession drives an mx listener with the mail_auth filter over
// loopback SMTP and DNS: a DMARC p=reject failure gets 550 5.7.1 at the
// end of DATA; a passing message is spooled with Authentication-Results.
func TestMXFilterSession(t *testing.T) {
	z := dnstest.Zone{
		"example.com":        {dnstest.TXT("v=spf1 ip4:127.0.0.1 -all")},
		"_dmarc.example.com": {dnstest.TXT("v=DMARC1; p=reject")},
		"example.net":        {dnstest.TXT("v=spf1 -all")},
		"_dmarc.example.net": {dnstest.TXT("v=DMARC1; p=reject")},
	}
	srv := dnstest.New(t, z)
	cfg := config.Dev(t.TempDir())
	cfg.Hostname = "mx.example.org"
	cfg.MailAuth = config.MailAuth{Check: true, Sign: true, MaxDKIMSignatures: 5, AuthservID: cfg.Hostname}
	mx, sub, err := mailAuthFilters(cfg, srv.Resolver(), memDir{}.IsLocalDomain, discard(), nil)
	if err != nil || mx == nil || sub != nil {
		t.Fatalf("filters %v %v %v", mx, sub, err)
	}
	addr, spool := serveMX(t, cfg.Hostname, memDir{}, mx)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	expect := func(cmd, prefix string) {
		t.Helper()
		if cmd != "" {
			c.Write([]byte(cmd + "\r\n"))
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if len(line) < 4 || line[3] != '-' {
				if !strings.HasPrefix(line, prefix) {
					t.Fatalf("%s: got %q, want %q", cmd, line, prefix)
				}
				return
			}
		}
	}
	expect("", "220 ")
	expect("EHLO client.example.com", "250 ")
	expect("MAIL FROM:<a@example.net>", "250 ")
	expect("RCPT TO:<bob@example.org>", "250 ")
	expect("DATA", "354 ")
	expect("From: a@example.net\r\nSubject: x\r\n\r\nHi\r\n.", "550 5.7.1 Message rejected by the DMARC policy of example.net")
	expect("MAIL FROM:<a@example.com>", "250 ")
	expect("RCPT TO:<bob@example.org>", "250 ")
	expect("DATA", "354 ")
	expect("Authentication-Results: mx.example.org; dmarc=pass\r\nFrom: a@example.com\r\nSubject: x\r\n\r\nHi\r\n.", "250 ")
	expect("MAIL FROM:<boss@example.org>", "250 ")
	expect("RCPT TO:<bob@example.org>", "250 ")
	expect("DATA", "354 ")
	expect("From: boss@example.org\r\n\r\nHi\r\n.", "550 5.7.1 Sender domain example.org is ours")
	expect("QUIT", "221 ")
	if len(spool.msgs) != 1 {
		t.Fatalf("spooled %d", len(spool.msgs))
	}
	got := string(spool.msgs[0])
	if !strings.HasPrefix(got, "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@example.com;") ||
		!strings.Contains(got, "dmarc=pass header.from=example.com") || strings.Count(got, "Authentication-Results:") != 1 {
		t.Errorf("spooled:\n%s", got)
	}
}

func TestSignFilter(t *testing.T) {
	dir := t.TempDir()
	// As postern dkim keygen writes it.
	_, pemBytes, err := mailauth.GenerateKey(mailauth.Ed25519SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := mailauth.WriteKey(mailauth.KeyPath(dir, "example.org", "s1", mailauth.Ed25519SHA256), pemBytes, nil); err != nil {
		t.Fatal(err)
	}
	cfg := config.Dev(dir)
	cfg.MailAuth = config.MailAuth{Sign: true}
	mx, sub, err := mailAuthFilters(cfg, nil, nil, discard(), nil)
	if err != nil || mx != nil || sub == nil {
		t.Fatalf("filters %v %v %v", mx, sub, err)
	}
	data := &smtp.Message{Header: []byte("Received: x\r\nFrom: a@example.org\r\nSubject: s\r\n\r\n"), Body: smtp.BodyBytes([]byte("Hi\r\n"))}
	res, err := sub.Filter(context.Background(), &smtp.Envelope{AuthUser: "a"}, data)
	if err != nil || !bytes.HasPrefix(res.Prepend, []byte("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n\td=example.org; s=s1;")) {
		t.Errorf("signed: %q %v", res.Prepend, err)
	}
	if res, _ := sub.Filter(context.Background(), &smtp.Envelope{}, data); res.Prepend != nil {
		t.Error("signed an unauthenticated message")
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
