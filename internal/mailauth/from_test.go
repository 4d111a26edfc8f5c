package mailauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// encodedWord returns s in charset cs as a B encoded word, encoded with
// x/text's encoder for cs.
func encodedWord(t testing.TB, cs, s string, enc func(string) (string, error)) string {
	t.Helper()
	b, err := enc(s)
	if err != nil {
		t.Fatal(err)
	}
	return "=?" + cs + "?b?" + base64.StdEncoding.EncodeToString([]byte(b)) + "?="
}

func TestParseFrom(t *testing.T) {
	t.Parallel()
	// 太 in ISO-2022-JP is ESC $ B "B@" ESC ( B, and 一 in Big5 is
	// 0xA4 "@": an "@" byte that is no "@" once decoded. Read as bytes,
	// the Big5 name would show "@paypal.example".
	jis := encodedWord(t, "iso-2022-jp", "山田太郎", japanese.ISO2022JP.NewEncoder().String)
	big5 := encodedWord(t, "big5", "一paypal.example", traditionalchinese.Big5.NewEncoder().String)
	if b, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(jis[strings.Index(jis, "?b?")+3:], "?=")); !strings.Contains(string(b), "@") {
		t.Fatalf("%s: no @ byte in %q", jis, b)
	}
	for _, tc := range []struct {
		in      string
		entries string // entries, comma-separated, "local@domain"; "-" for none
		shown   string // Shown, comma-separated
		err     string // error substring; entries ignored
	}{
		{in: "alice@example.org", entries: "alice@example.org"},
		{in: "Alice <alice@example.org>", entries: "alice@example.org"},
		{in: "\"Doe, Alice\" <alice@Example.ORG.>", entries: "alice@example.org"},
		{in: "Alice <alice@example.org", entries: "alice@example.org"},
		{in: "Alice <alice@example.org>;", entries: "alice@example.org"},
		{in: "alice(x)@example.org", entries: "alice@example.org"},
		{in: "alice@(x)example(y).org(z)", entries: "alice@example.org"},
		{in: "alice@example . org", entries: "alice@example.org"},
		{in: "alice@example .org", entries: "alice@example.org"},
		{in: "a@0.0", entries: "a@"},
		{in: "a@example.123", entries: "a@"},
		{in: "\"a b\"@example.org", entries: "a b@example.org"},
		{in: "Alice [x] <alice@example.org> (y) z", entries: "alice@example.org"},
		{in: "alice@example.org <alice@example.org>", entries: "alice@example.org"},
		{in: "other@example.org <alice@example.org>", entries: "alice@example.org", shown: "other@example.org"},
		{in: "G: alice@example.org;", entries: "alice@example.org"},
		{in: "G: alice@example.org, bob@example.net;", entries: "alice@example.org,bob@example.net"},
		{in: "alice@example.org, bob@example.net", entries: "alice@example.org,bob@example.net"},
		{in: "G:;", entries: "-"},
		{in: "", entries: "-"},
		{in: "Alice", entries: "@"},
		{in: "Alice, <a@example.org>", entries: "@,a@example.org"},
		{in: "(comment)", entries: "@"},
		{in: "a@[192.0.2.1]", entries: "a@"},
		{in: "a@localhost", entries: "a@localhost"},
		{in: "a@123", entries: "a@"},
		{in: "a@192.0.2.1", entries: "a@"},
		{in: "a@exa!mple.org", entries: "a@"},
		{in: "<a>", entries: "@"},
		{in: "a@b\u00fccher.example", entries: "a@xn--bcher-kva.example"},
		{in: "a@b\u00fccher\u3002example", entries: "a@xn--bcher-kva.example"},
		{in: "a@wor\u212a.example", entries: "a@work.example"},
		{in: "a@\u0080.example", entries: "a@"},
		{in: "=?utf-8?q?Alice?= <alice@example.org>", entries: "alice@example.org"},
		{in: "=?utf-8?q?alice=40example.org?= <alice@example.org>", entries: "alice@example.org"},
		{in: "=?utf-8?q?boss=40example.org?= <alice@example.org>", entries: "alice@example.org", shown: "boss@example.org"},
		{in: "=?utf-8?q?M=C3=BCller=2C_Hans?= <h@example.org>", entries: "h@example.org"},
		{in: "=?utf-8?q?Bob_=3A=29?= <b@example.org>", entries: "b@example.org"},
		{in: "=?utf-8?q?Alice=40Work?= <a@example.org>", entries: "a@example.org"},
		{in: jis + " <yamada@example.jp>", entries: "yamada@example.jp"},
		{in: big5 + " <a@example.tw>", entries: "a@example.tw"},
		{in: "=?us-ascii*en?q?Keith_Moore?= <moore@example.org>", entries: "moore@example.org"},
		{in: "\"service@paypal.example\" <a@example.org>", entries: "a@example.org"},
		{in: "a@example.org (service@paypal.example)", entries: "a@example.org"},
		// Ambiguous.
		{in: "service@paypal.example <a@example.org>", err: "another domain"},
		{in: "<a@example.org> service@paypal.example", err: "another domain"},
		{in: "x@ <a@example.org>", err: "an address in the display name"},
		{in: "A <a@example.org> <b@example.org>", err: "two addresses in angle brackets"},
		{in: "A <a@example.org <b@example.org>", err: "\"<\" inside angle brackets"},
		{in: "A a@example.org>", err: "\">\" without \"<\""},
		{in: "A <a@example.org, b@example.net>", err: "list separator inside angle brackets"},
		{in: "<@paypal.example:a@example.org>", err: "source route"},
		{in: "a@paypal.example: b@example.org;", err: "address before a group name's colon"},
		{in: "G: H: a@example.org;;", err: "group inside a group"},
		{in: "a@paypal.example@example.org", err: "two \"@\""},
		{in: "\"a@paypal.example\"@example.org", err: "\"@\" in the local part"},
		{in: "[x]@example.org", err: "brackets in the local part"},
		{in: "a@example.org paypal.example", err: "text after the address"},
		{in: "a@example.org \"x\"", err: "text after the address"},
		{in: "a@paypal.example. evil.example", err: "text after the address"},
		{in: "a@paypal.example.(x)evil.example", err: "text after the address"},
		{in: "a@[192.0.2.1].example.org", err: "text after the address"},
		{in: "a@example.[192.0.2.1]", err: "text after the address"},
		{in: "=?utf-8?b?c2VydmljZUBwYXlwYWwuZXhhbXBsZQ==?=@example.org", err: "encoded word in the address"},
		{in: "a@=?utf-8?q?example.org?=", err: "encoded word in the address"},
		{in: "=?utf-8?q?service=40paypal.example?=", err: "the field has none"},
		{in: "=?utf-8?q?service=40paypal.example?= <a@example.org>", err: "another domain"},
		{in: "\"=?utf-8?q?=22?= service@paypal.example\" <a@example.org>", err: "another domain"},
		{in: "=?x-unknown?q?service=40paypal.example?= <a@example.org>", err: "another domain"},
		{in: "=?utf-7?q?service+AEA-paypal.example?= <a@example.org>", err: "charset that cannot be checked"},
		{in: "\"A <a@example.org>", err: "unbalanced"},
		{in: "a@example.org (x", err: "unbalanced"},
		{in: "a@example.org )", err: "unbalanced"},
		{in: "a@[192.0.2.1", err: "unbalanced"},
		{in: "\"a\\", err: "unbalanced"},
		{in: "a@example.org\x00@paypal.example", err: "control character"},
		{in: "a@example.org\x1b", err: "control character"},
		{in: "\"\x82\\\" <a@paypal.example> \"@example.org", err: "not UTF-8"},
	} {
		f, err := ParseFrom(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrFromAmbiguous) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseFrom(%q) = %+v, %v; want error %q", tc.in, f, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFrom(%q): %v", tc.in, err)
			continue
		}
		if got := joinMailboxes(f.Entries); got != tc.entries {
			t.Errorf("ParseFrom(%q) entries %q, want %q", tc.in, got, tc.entries)
		}
		if got := joinMailboxes(f.Shown); got != tc.shown && !(got == "-" && tc.shown == "") {
			t.Errorf("ParseFrom(%q) shown %q, want %q", tc.in, got, tc.shown)
		}
	}
}

func joinMailboxes(ms []Mailbox) string {
	if len(ms) == 0 {
		return "-"
	}
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

// TestParseFromAgreesWithNetMail checks that where Go's strict parser
// reads an address, ParseFrom reads the same one.
func TestParseFromAgreesWithNetMail(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"alice@example.org", "Alice <alice@example.org>", "\"Doe, A\" <a@example.org>",
		"a@example.org (c)", "=?utf-8?q?J=C3=B6rg?= <j@example.org>", "a@example.org, b@example.net",
		"\"a b\"@example.org", "G: a@example.org;", "<a.b+c@sub.example.org>",
	} {
		list, err := mail.ParseAddressList(in)
		if err != nil {
			t.Fatalf("net/mail %q: %v", in, err)
		}
		f, err := ParseFrom(in)
		if err != nil || len(f.Entries) != len(list) {
			t.Fatalf("ParseFrom(%q) = %+v, %v; net/mail %v", in, f, err, list)
		}
		for i, a := range list {
			if !strings.EqualFold(a.Address, f.Entries[i].String()) {
				t.Errorf("%q: %s, net/mail %s", in, f.Entries[i], a.Address)
			}
		}
	}
}

// TestCheckerAuthor checks what Check does with the author: DMARC and the
// own-domain check act on the domain ParseFrom finds; a message without
// exactly one author domain is refused, in report-only mode too; an
// accepted message always has a dmarc= result.
func TestCheckerAuthor(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	ctx := context.Background()
	ip2 := netip.MustParseAddr("192.0.2.2") // SPF passes for example.net only
	raw := func(header string) []byte {
		return []byte(header + "Subject: hi\r\n\r\nHello.\r\n")
	}
	for _, tc := range []struct {
		name       string
		reportOnly bool
		data       []byte
		reject     string // reply, "" for none
		ar         string // in Authentication-Results
	}{
		{name: "lenient form, DMARC reject", data: raw("From: A <a@example.com\r\n"),
			reject: "550 5.7.1 Message rejected by the DMARC policy of example.com"},
		{name: "lenient form, report only", reportOnly: true, data: raw("From: a(x)@Example.COM.\r\n"),
			ar: "dmarc=fail (p=reject dis=reject) header.from=example.com"},
		{name: "lenient form, own domain", reportOnly: true, data: raw("From: \"B\" <boss@example.org> x\r\n"),
			reject: "550 5.7.1 Sender domain example.org is ours and this message is not authenticated for it"},
		{name: "no From", data: raw(""),
			reject: "550 5.7.1 Message must have exactly one From header field; it has none"},
		{name: "no From, report only", reportOnly: true, data: raw(""),
			reject: "550 5.7.1 Message must have exactly one From header field; it has none"},
		{name: "three From fields", data: raw("From: a@example.net\r\nfrom: a@example.net\r\nFROM : a@example.net\r\n"),
			reject: "550 5.7.1 Message must have exactly one From header field; it has 3"},
		{name: "two addresses", data: raw("From: a@example.net,\r\n b@example.com\r\n"),
			reject: "550 5.7.1 From header field must hold exactly one address; it holds 2"},
		{name: "no domain", data: raw("From: Alice\r\n"),
			reject: "550 5.7.1 From header field has no address with a domain"},
		{name: "ambiguous, report only", reportOnly: true, data: raw("From: a@example.com <a@example.net>\r\n"),
			reject: "550 5.7.1 From header field is ambiguous: the display name shows an address in another domain"},
		{name: "no record", data: raw("From: A <a@EXAMPLE.NET.\r\n"), ar: "dmarc=none header.from=example.net"},
		{name: "unicode domain", data: raw("From: a@b\u00fccher.example\r\n"), ar: "dmarc=none header.from=xn--bcher-kva.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := f.checker(t, tc.reportOnly).Check(ctx, Message{Remote: ip2, Helo: "client.example.net", MailFrom: "x@example.net", Data: tc.data})
			if err != nil {
				t.Fatal(err)
			}
			if tc.reject != "" {
				if v.Reject == nil || fmt.Sprintf("%d %s %s", v.Reject.Code, v.Reject.Enhanced, v.Reject.Message) != tc.reject {
					t.Errorf("reject = %v, want %q", v.Reject, tc.reject)
				}
				return
			}
			if v.Reject != nil {
				t.Fatalf("rejected: %v", v.Reject)
			}
			if !v.Results.Checked || !bytes.Contains(v.Prepend, []byte(tc.ar)) {
				t.Errorf("Authentication-Results lacks %q:\n%s", tc.ar, v.Prepend)
			}
		})
	}
}
