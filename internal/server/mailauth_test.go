package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"postern/internal/config"
	"postern/internal/dns/dnstest"
)

// fromDir is the directory of TestMXFromForms: example.test and
// work.test are local, every address in them exists.
type fromDir struct{}

func (fromDir) IsLocalDomain(d string) bool { return d == "example.test" || d == "work.test" }
func (fromDir) RecipientExists(ctx context.Context, addr string) (bool, error) {
	return true, nil
}
func (fromDir) MaySendAs(ctx context.Context, user, addr string) (bool, error) { return false, nil }

// TestMXFromForms sends one message per From form to an mx listener with
// [mail_auth] check on, over loopback SMTP and a loopback DNS server
// (issue 12 §1). MAIL FROM is bounce@sender.test, whose SPF passes for
// 127.0.0.0/8; paypal.test and xn--bcher-kva.test publish DMARC
// p=reject; sender.test publishes p=reject too, so that an aligned From
// passes; other.test publishes nothing; example.test and work.test are
// ours. Whatever the form, DMARC and the own-domain check act on the
// domain a mail client shows, or the message is refused with 550 5.7.1
// and a reply that says why; an accepted message always carries a dmarc=
// result.
func TestMXFromForms(t *testing.T) {
	const (
		dmarcReject = "550 5.7.1 Message rejected by the DMARC policy of paypal.test"
		spoofed     = "550 5.7.1 Sender domain example.test is ours"
		noFrom      = "550 5.7.1 Message must have exactly one From header field; it has none"
		twoFroms    = "550 5.7.1 Message must have exactly one From header field; it has 2"
		twoAddrs    = "550 5.7.1 From header field must hold exactly one address"
		noAddr      = "550 5.7.1 From header field has no address with a domain"
		ambiguous   = "550 5.7.1 From header field is ambiguous"
		passed      = "dmarc=pass header.from=sender.test"
	)
	addr, spool := fromFormsMX(t)
	for _, tc := range []struct {
		name   string
		header string // the From field(s), each ending in CRLF
		want   string // the reply to the final dot, or for 250 what Authentication-Results holds
	}{
		// The forms of the issue: each was answered 250.
		{"no closing bracket", "From: PayPal <service@paypal.test\r\n", dmarcReject},
		{"semicolon after", "From: PayPal <service@paypal.test>;\r\n", dmarcReject},
		{"comment in local part", "From: service(PayPal)@paypal.test\r\n", dmarcReject},
		{"domain literal in name", "From: PayPal [Security] <service@paypal.test>\r\n", dmarcReject},
		{"own domain, no closing bracket", "From: Alice <alice@example.test\r\n", spoofed},
		{"own domain, comment in local part", "From: alice(comment)@example.test\r\n", spoofed},
		{"own domain, address as name", "From: alice@example.test <alice@example.test>\r\n", spoofed},
		{"own domain, trailing text", "From: \"Alice\" <alice@example.test> trailing\r\n", spoofed},
		{"own domain, space before @", "From: Alice <alice @example.test>\r\n", spoofed},
		{"own domain, trailing dot", "From: Alice <alice@example.test.>\r\n", spoofed},
		{"encoded word as address", "From: =?utf-8?q?service=40paypal=2Etest?=\r\n", ambiguous},
		{"no From field", "", noFrom},
		// Well-formed controls.
		{"control: name and address", "From: PayPal <service@paypal.test>\r\n", dmarcReject},
		{"control: bare address", "From: service@paypal.test\r\n", dmarcReject},
		{"control: own domain", "From: Alice <alice@example.test>\r\n", spoofed},
		{"control: aligned", "From: News <news@sender.test>\r\n", passed},
		{"control: no DMARC record", "From: news@other.test\r\n", "dmarc=none header.from=other.test"},
		// More of what clients show.
		{"upper case", "From: PAYPAL <SERVICE@PAYPAL.TEST>\r\n", dmarcReject},
		{"folded before bracket", "From: PayPal\r\n <service@paypal.test>\r\n", dmarcReject},
		{"folded in address", "From: PayPal <service@\r\n\tpaypal.test>\r\n", dmarcReject},
		{"comment after", "From: \"PayPal\" <service@paypal.test> (Security team)\r\n", dmarcReject},
		{"legacy comment name", "From: service@paypal.test (PayPal)\r\n", dmarcReject},
		{"brackets only", "From: <service@paypal.test>\r\n", dmarcReject},
		{"encoded name", "From: =?utf-8?q?PayPal?= <service@paypal.test>\r\n", dmarcReject},
		{"spaces around dot", "From: PayPal <service@paypal . test>\r\n", dmarcReject},
		{"group of one", "From: PayPal: service@paypal.test;\r\n", dmarcReject},
		{"trailing dot and case", "From: service@PayPal.Test.\r\n", dmarcReject},
		{"quoted local part", "From: \"service\"@paypal.test\r\n", dmarcReject},
		{"quoted local part in brackets", "From: PayPal <\"service\"@paypal.test>\r\n", dmarcReject},
		{"comment in brackets", "From: PayPal <(x)service@paypal.test(y)>\r\n", dmarcReject},
		{"lower-case field name", "from: PayPal <service@paypal.test>\r\n", dmarcReject},
		{"space before colon", "From : PayPal <service@paypal.test>\r\n", dmarcReject},
		{"unicode domain", "From: service@b\u00fccher.test\r\n", "550 5.7.1 Message rejected by the DMARC policy of xn--bcher-kva.test"},
		{"kelvin sign", "From: boss@wor\u212a.test\r\n", "550 5.7.1 Sender domain work.test is ours"},
		{"own domain upper case", "From: Alice <alice@EXAMPLE.TEST>\r\n", spoofed},
		{"own domain, name before bare address", "From: Alice alice@example.test\r\n", spoofed},
		// Refused: no single author that every client agrees on.
		{"two From fields", "From: news@sender.test\r\nFrom: service@paypal.test\r\n", twoFroms},
		{"two addresses", "From: service@paypal.test, news@sender.test\r\n", twoAddrs},
		{"two brackets", "From: PayPal <service@paypal.test> <news@sender.test>\r\n", ambiguous},
		{"address as name, other domain", "From: service@paypal.test <news@sender.test>\r\n", ambiguous},
		{"address after brackets", "From: <news@sender.test> service@paypal.test\r\n", ambiguous},
		{"two at signs", "From: service@paypal.test@sender.test\r\n", ambiguous},
		{"at sign in quoted local part", "From: \"service@paypal.test\"@sender.test\r\n", ambiguous},
		{"source route", "From: <@paypal.test:news@sender.test>\r\n", ambiguous},
		{"encoded word in local part", "From: =?utf-8?b?c2VydmljZUBwYXlwYWwudGVzdA==?=@sender.test\r\n", ambiguous},
		{"encoded address as name", "From: =?utf-8?q?service=40paypal.test?= <news@sender.test>\r\n", ambiguous},
		{"empty group", "From: undisclosed-recipients:;\r\n", noAddr},
		{"name only", "From: PayPal\r\n", noAddr},
		{"address literal", "From: service@[127.0.0.1]\r\n", noAddr},
		{"empty brackets", "From: PayPal <>\r\n", noAddr},
		{"empty field", "From:\r\n", noAddr},
		{"second entry a comment", "From: PayPal <service@paypal.test>, (Security)\r\n", twoAddrs},
		{"group of two", "From: Friends: service@paypal.test, news@sender.test;\r\n", twoAddrs},
		{"unbalanced quote", "From: \"PayPal <service@paypal.test>\r\n", ambiguous},
		{"unbalanced comment", "From: news@sender.test (PayPal <service@paypal.test>\r\n", ambiguous},
		{"text after domain", "From: news@sender.test paypal.test\r\n", ambiguous},
		// Accepted: the address is what clients show, whatever the name says.
		{"address in quoted name", "From: \"service@paypal.test\" <news@sender.test>\r\n", passed},
		{"encoded name with the same address", "From: =?utf-8?q?News_=3Cnews=40sender.test=3E?= <news@sender.test>\r\n", passed},
		{"encoded name with a comma", "From: =?utf-8?q?M=C3=BCller=2C_Hans?= <news@sender.test>\r\n", passed},
		{"address as name, same", "From: news@sender.test <news@sender.test>\r\n", passed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, stored := mxFromSession(t, addr, spool, tc.header)
			if strings.HasPrefix(tc.want, "550") {
				if !strings.HasPrefix(reply, tc.want) {
					t.Errorf("reply %q, want %q", reply, tc.want)
				}
				return
			}
			if !strings.HasPrefix(reply, "250 ") {
				t.Fatalf("reply %q, want 250", reply)
			}
			ar := firstField(stored)
			if !strings.HasPrefix(ar, "Authentication-Results: mx.example.test;") {
				t.Fatalf("stored message does not start with our Authentication-Results:\n%s", stored)
			}
			if !strings.Contains(ar, "\tdmarc=") || !strings.Contains(ar, tc.want) {
				t.Errorf("Authentication-Results lacks %q:\n%s", tc.want, stored)
			}
		})
	}
}

// firstField returns the first header field of msg, folded lines
// included.
func firstField(msg string) string {
	i := 0
	for {
		j := strings.Index(msg[i:], "\r\n")
		if j < 0 {
			return msg
		}
		i += j + 2
		if i == len(msg) || (msg[i] != ' ' && msg[i] != '\t') {
			return msg[:i]
		}
	}
}

// fromFormsMX starts the mx listener of TestMXFromForms and its DNS
// server, and returns the listener's address and spool.
func fromFormsMX(t *testing.T) (string, *memSpool) {
	srv := dnstest.New(t, dnstest.Zone{
		"sender.test":               {dnstest.TXT("v=spf1 ip4:127.0.0.0/8 -all")},
		"_dmarc.sender.test":        {dnstest.TXT("v=DMARC1; p=reject")},
		"_dmarc.paypal.test":        {dnstest.TXT("v=DMARC1; p=reject")},
		"_dmarc.xn--bcher-kva.test": {dnstest.TXT("v=DMARC1; p=reject")},
	})
	cfg := config.Dev(t.TempDir())
	cfg.Hostname = "mx.example.test"
	cfg.MailAuth = config.MailAuth{Check: true, MaxDKIMSignatures: 5, AuthservID: cfg.Hostname}
	mx, _, err := mailAuthFilters(cfg, srv.Resolver(), fromDir{}.IsLocalDomain, discard(), nil)
	if err != nil || mx == nil {
		t.Fatalf("filters %v %v", mx, err)
	}
	return serveMX(t, cfg.Hostname, fromDir{}, mx)
}

// mxFromSession runs one SMTP transaction with the From field(s) header
// against the mx listener at addr and returns the reply to the final dot
// and the message it stored ("" when none).
func mxFromSession(t *testing.T, addr string, spool *memSpool, header string) (reply, stored string) {
	t.Helper()
	spool.mu.Lock()
	before := len(spool.msgs)
	spool.mu.Unlock()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	read := func() string {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSuffix(line, "\r\n")
			}
		}
	}
	do := func(cmd, prefix string) {
		t.Helper()
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		if got := read(); !strings.HasPrefix(got, prefix) {
			t.Fatalf("%s: got %q, want %q", cmd, got, prefix)
		}
	}
	do("", "220 ")
	do("EHLO client.sender.test", "250 ")
	do("MAIL FROM:<bounce@sender.test> BODY=8BITMIME SMTPUTF8", "250 ")
	do("RCPT TO:<bob@example.test>", "250 ")
	do("DATA", "354 ")
	fmt.Fprintf(c, "%sTo: bob@example.test\r\nSubject: from forms\r\n\r\nHello.\r\n.\r\n", header)
	reply = read()
	do("QUIT", "221 ")
	spool.mu.Lock()
	defer spool.mu.Unlock()
	if len(spool.msgs) > before {
		stored = string(spool.msgs[before])
	}
	return reply, stored
}
