package mailauth

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

// The fuzz target below checks the Checker against reference readers of
// the From field, written apart from ParseFrom:
//
//   - displayList reads the field as Thunderbird's address parser does
//     (a state machine over tokens, encoded words decoded token by token);
//   - the same, on the field with every encoded word decoded first, as a
//     naive client reads it;
//   - Go's net/mail, where it accepts the field.
//
// Whatever the field, the Checker either refuses the message or acts on
// the one domain that every reader shows.

// shownMailbox is an entry as a reference reader lists it.
type shownMailbox struct{ name, email string }

// refToken is a token of the reference tokenizer: a delimiter, a comment,
// a quoted string, a domain literal, or a run of other characters.
type refToken struct {
	text  string
	delim bool // one of : , ; < > @
	cmnt  bool
}

// refTokens splits v as Thunderbird's tokenizer does: unterminated
// quotes and comments run to the end; encoded words that make up a whole
// token are decoded when decode is set.
func refTokens(v string, decode bool) []refToken {
	var out []refToken
	dec := mime.WordDecoder{CharsetReader: wordCharset}
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case strings.IndexByte(":,;<>@", c) >= 0:
			out = append(out, refToken{text: v[i : i+1], delim: true})
			i++
		case c == '(':
			depth, j := 0, i
			for ; j < len(v); j++ {
				if v[j] == '\\' {
					j++
				} else if v[j] == '(' {
					depth++
				} else if v[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			j = min(j+1, len(v))
			out = append(out, refToken{text: v[i:j], cmnt: true})
			i = j
		case c == '"' || c == '[':
			end := byte('"')
			if c == '[' {
				end = ']'
			}
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != end; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			if c == '[' {
				out = append(out, refToken{text: "[" + b.String() + "]"})
			} else {
				out = append(out, refToken{text: b.String()})
			}
			i = min(j+1, len(v))
		default:
			j := i
			for j < len(v) && strings.IndexByte(" \t\r\n:,;<>@(\"[", v[j]) < 0 {
				j++
			}
			if j == i { // a stray ")" or "]"
				j++
			}
			w := v[i:j]
			if decode && strings.HasPrefix(w, "=?") && strings.HasSuffix(w, "?=") {
				if d, err := dec.Decode(w); err == nil {
					w = d
				}
			}
			out = append(out, refToken{text: w})
			i = j
		}
	}
	return out
}

// displayList reads an address field the way Thunderbird's
// parseAddressingHeader does: a "<" starts the address and makes what
// came before it the name (a second "<" makes the address so far the
// name); an "@" outside brackets turns the words before it into the
// local part; "," and ";" end an entry; ":" starts a group; comments are
// kept in the name and dropped from addresses.
func displayList(v string, decode bool) []shownMailbox {
	var (
		out               []shownMailbox
		name, local, addr string
		inAngle           bool
	)
	// Words are joined with a space, except before a word that starts
	// with a dot and after one (Thunderbird's needsSpace).
	prev := ""
	join := func(s, w string) string {
		if s != "" && prev != "" && prev[0] != '.' && w != "" && w[0] != '.' {
			s += " "
		}
		return s + w
	}
	push := func() {
		if name != "" || addr != "" {
			out = append(out, shownMailbox{name, addr})
		}
		name, local, addr, inAngle = "", "", "", false
	}
	for _, t := range refTokens(v, decode) {
		switch {
		case t.delim && t.text == ":":
			name, local = "", ""
		case t.delim && t.text == "<":
			if inAngle {
				if addr != "" {
					name = addr
				}
				local, addr = "", ""
			}
			inAngle = true
		case t.delim && t.text == ">":
			inAngle = false
		case t.delim && t.text == "@":
			if !inAngle {
				addr, name, local = local, "", ""
				inAngle = true
			}
			addr += "@"
		case t.delim: // , ;
			push()
		case t.cmnt:
			if !inAngle {
				name += t.text
			}
			continue
		case inAngle:
			addr = join(addr, t.text)
		default:
			name = join(name, t.text)
			local = join(local, t.text)
		}
		if t.delim {
			prev = ""
		} else {
			prev = t.text
		}
	}
	push()
	return out
}

// refDomains returns the domain names a reader shows in an email: after
// each "@" (and any spaces), the longest run of letters, digits, "-",
// "_", "." and non-ASCII characters, lower-cased, without a trailing
// dot, IDNA-mapped when it is not ASCII. An empty run, or one IDNA
// refuses, is no domain name and left out.
func refDomains(email string) []string {
	var out []string
	for i := 0; i < len(email); i++ {
		if email[i] != '@' {
			continue
		}
		j := i + 1
		for j < len(email) && (email[j] == ' ' || email[j] == '\t') {
			j++
		}
		k := j
		for k < len(email) {
			c := email[k]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.", c) >= 0 || c >= 0x80) {
				break
			}
			k++
		}
		d := strings.TrimSuffix(strings.ToLower(email[j:k]), ".")
		if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
			a, err := idna.Lookup.ToASCII(d)
			if err != nil {
				continue
			}
			d = strings.TrimSuffix(a, ".")
		}
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// FuzzFromDomain sends messages with a From field from the fuzzer
// through the Checker (MAIL FROM bounce@sender.example, whose SPF passes;
// paypal.example publishes p=reject; example.test is ours). When the
// message is accepted, Authentication-Results carries a dmarc= result for
// one domain D, and every reader shows at least one address and no
// domain but D; D is not ours (the own-domain check refused it).
func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		"PayPal <service@paypal.example", "PayPal <service@paypal.example>;", "service(PayPal)@paypal.example",
		"PayPal [Security] <service@paypal.example>", "Alice <alice@example.test", "alice(comment)@example.test",
		"alice@example.test <alice@example.test>", "\"Alice\" <alice@example.test> trailing",
		"Alice <alice @example.test>", "Alice <alice@example.test.>", "=?utf-8?q?service=40paypal=2Eexample?=",
		"news@sender.example", "News <news@sender.example>", "\"service@paypal.example\" <news@sender.example>",
		"<news@sender.example> service@paypal.example", "=?utf-8?q?x=40paypal.example?= <news@sender.example>",
		"G: news@sender.example;", "news@sender.example (x)", "<@paypal.example:news@sender.example>",
		"\"a@paypal.example\"@sender.example", "news@sender . example", "news@sender.example, a@paypal.example",
		"=?utf-8?b?c2VydmljZUBwYXlwYWwuZXhhbXBsZQ==?=@sender.example", "News\r\n <news@sender.example>",
		"a@b\u00fccher.example", "=?big5?b?pEBwYXlwYWwuZXhhbXBsZQ==?= <news@sender.example>",
		"news@sender.example paypal.example", "service@paypal.example. sender.example", "PayPal <service@paypal.example> <news@sender.example>",
		"service@paypal.example@sender.example", "PayPal <news@sender.example, service@paypal.example>",
		"Friends: service@paypal.example, news@sender.example;", "news@sender.example (PayPal <service@paypal.example>",
		"\"PayPal <service@paypal.example>", "news@[192.0.2.1]", "PayPal", "undisclosed-recipients:;",
	} {
		f.Add(s)
	}
	r := mapResolver{
		"sender.example":        {"v=spf1 ip4:192.0.2.1 -all"},
		"_dmarc.paypal.example": {"v=DMARC1; p=reject"},
	}
	c, err := NewChecker(CheckerOptions{
		Resolver:      r,
		Hostname:      ourHost,
		IsLocalDomain: func(d string) bool { return d == "example.test" },
		Now:           clock,
		Rand:          func(int) int { return 0 },
		MaxSignatures: 5,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		// Only folds may break the line: anything else would be another
		// field or the body.
		for i := 0; i < len(value); i++ {
			if value[i] == '\n' || (value[i] == '\r' && !strings.HasPrefix(value[i:], "\r\n ") && !strings.HasPrefix(value[i:], "\r\n\t")) {
				return
			}
		}
		msg := []byte("From: " + value + "\r\nSubject: x\r\n\r\nHello.\r\n")
		v, err := c.Check(context.Background(), Message{Remote: netip.MustParseAddr("192.0.2.1"), Helo: "mx.sender.example",
			MailFrom: "bounce@sender.example", Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		if v.Reject != nil {
			return // refused: nothing for a client to show
		}
		d := v.Results.DMARC.From
		if !v.Results.Checked || d == "" || !bytes.Contains(v.Prepend, []byte("dmarc="+v.Results.DMARC.Result+" ")) ||
			!bytes.Contains(v.Prepend, []byte("header.from="+d)) {
			t.Fatalf("From %q accepted without a dmarc= result: %+v\n%s", value, v.Results, v.Prepend)
		}
		if d == "example.test" {
			t.Fatalf("From %q: own domain accepted", value)
		}
		unfolded := strings.NewReplacer("\r\n ", " ", "\r\n\t", "\t").Replace(value)
		decoded, derr := (&mime.WordDecoder{CharsetReader: wordCharset}).DecodeHeader(unfolded)
		readers := map[string][]shownMailbox{"thunderbird": displayList(unfolded, true)}
		if derr == nil {
			readers["decode first"] = displayList(decoded, false)
		}
		if list, err := mail.ParseAddressList(unfolded); err == nil {
			var ms []shownMailbox
			for _, a := range list {
				ms = append(ms, shownMailbox{a.Name, a.Address})
			}
			readers["net/mail"] = ms
			if len(list) != 1 {
				t.Fatalf("From %q: net/mail reads %d addresses, checker acted on %s", value, len(list), d)
			}
		}
		for reader, list := range readers {
			n := 0
			for _, m := range list {
				for _, rd := range refDomains(m.email) {
					n++
					if rd != d {
						t.Fatalf("From %q: %s shows %q (domain %q), checker acted on %q", value, reader, m.email, rd, d)
					}
				}
			}
			if n == 0 && reader != "decode first" {
				t.Fatalf("From %q: %s shows no address %+v, checker acted on %q", value, reader, list, d)
			}
		}
	})
}

// FuzzSubmissionAddresses checks the send_as side: when
// SubmissionAddresses accepts a field, every address that a reference
// reader shows is among the addresses it returns (each of which the
// session checks with MaySendAs).
func FuzzSubmissionAddresses(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "Alice <alice@example.org>", "\"Doe, A\" <a@example.org>, b@example.org",
		"=?utf-8?q?bob=40example.org?= <alice@example.org>", "\"bob@example.org\" <alice@example.org>",
		"alice@example.org (bob@example.org)", "G: a@example.org;", "\"a b\"@example.org",
		"=?utf-8?q?J=C3=B6rg?= <j@example.org>", "a@b\u00fccher.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		addrs, err := SubmissionAddresses(value)
		if err != nil {
			return
		}
		owned := map[string]bool{}
		for _, a := range addrs {
			at := strings.LastIndexByte(a, '@')
			owned[strings.ToLower(a[:at])+"@"+normalizeDomain(a[at+1:])] = true
		}
		readers := map[string][]shownMailbox{"thunderbird": displayList(value, true)}
		if decoded, err := (&mime.WordDecoder{CharsetReader: wordCharset}).DecodeHeader(value); err == nil {
			readers["decode first"] = displayList(decoded, false)
		}
		for reader, list := range readers {
			for _, m := range list {
				ds := refDomains(m.email)
				if len(ds) == 0 {
					continue
				}
				if len(ds) > 1 {
					t.Fatalf("From %q accepted as %q; %s shows %q", value, addrs, reader, m.email)
				}
				local := m.email[:strings.LastIndexByte(m.email, '@')]
				if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
					local = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(local[1 : len(local)-1])
				}
				if !owned[strings.ToLower(local)+"@"+ds[0]] {
					t.Fatalf("From %q accepted as %q; %s shows %q", value, addrs, reader, m.email)
				}
			}
		}
	})
}
