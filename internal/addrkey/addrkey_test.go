package addrkey

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"postern/internal/smtp"
)

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{
		"work.test":             "work.test",
		"Work.TEST.":            "work.test",
		"bücher.example":        "xn--bcher-kva.example",
		"BüCHER.Example":        "xn--bcher-kva.example", // ASCII case only
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"XN--BCHER-KVA.example": "xn--bcher-kva.example",
		"straße.de":             "xn--strae-oqa.de", // ß is not ss (IDNA2008)
		"[192.0.2.1]":           "[192.0.2.1]",
		"[IPv6:2001:db8::1]":    "[ipv6:2001:db8::1]",
		"localhost":             "localhost",
		"ab--cd.example":        "ab--cd.example",
	} {
		if got, err := Domain(in); err != nil || got != want {
			t.Errorf("Domain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"wor\u212A.test",       // KELVIN SIGN: not work.test
		"\u017Ftraße.de",       // LATIN SMALL LETTER LONG S
		"BÜCHER.example",       // upper-case non-ASCII
		"bu\u0308cher.example", // not NFC
		"ｅｘａｍｐｌｅ.test",         // full-width
		"xn--abc.example",      // bad Punycode
		"a_b.example",          //
		"-a.example",           //
		"",                     //
		".",                    //
		"a..b",                 //
		strings.Repeat("a", 64) + ".example",
	} {
		if got, err := Domain(in); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("Domain(%q) = %q, %v; want ErrInvalidDomain", in, got, err)
		}
	}
}

func TestLocal(t *testing.T) {
	for in, want := range map[string]string{
		"Alice":              "alice",
		"O'Brien+Tag":        "o'brien+tag",
		"Élise":              "Élise", // non-ASCII exactly as written
		"E\u0301lise":        "Élise", // after NFC
		"JOSÉ":               "josÉ",  // ASCII letters lowered only
		"\u212Aate":          "kate",  // U+212A is canonically K
		"J\u030C":            "\u01F0",
		"ſam":                "ſam", // no Unicode folding: not "sam"
		"δοκιμή":             "δοκιμή",
		"ΔΟΚΙΜΉ":             "ΔΟΚΙΜΉ",
		"用户":                 "用户",
		"":                   "",
		"postmaster":         "postmaster",
		"PostMaster":         "postmaster",
		"\u00C5ngstr\u00F6m": "\u00C5ngstr\u00F6m",
		"\u212Bngstr\u00F6m": "\u00C5ngstr\u00F6m", // ANGSTROM SIGN is Å
	} {
		if got := Local(in); got != want {
			t.Errorf("Local(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Work.Test":       "alice@work.test",
		"Élise@Bücher.example":  "Élise@xn--bcher-kva.example",
		"a@b@C.example":         "a@b@c.example",
		"postmaster":            "postmaster",
		"POSTMASTER":            "postmaster",
		"\u212Aate@example.org": "kate@example.org",
	} {
		if got, err := Address(in); err != nil || got != want {
			t.Errorf("Address(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := Address("alice@wor\u212A.test"); !errors.Is(err, ErrInvalidDomain) {
		t.Errorf("Address(Kelvin domain) = %q, %v; want ErrInvalidDomain", got, err)
	}
}

// FuzzKeys checks the folding functions: the keys are fixed points
// (folding a key changes nothing), valid UTF-8 in NFC without upper-case
// ASCII; a local part's key is canonically equivalent to the local part
// in NFC with its ASCII letters lowered, so only ASCII letters are folded;
// a domain key is lower-case ASCII (an A-label, or a literal) and a
// domain's key is valid whenever the address's is.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"Alice@Work.Test", "alice@wor\u212A.test", "Élise@bücher.example", "J\u030C@x", "ſ@xn--zca.de", "[IPv6:::1]", "a@b@c", "E\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if !utf8.ValidString(addr) {
			return
		}
		l := Local(addr)
		if Local(l) != l {
			t.Fatalf("Local(%q) = %q is not a fixed point (%q)", addr, l, Local(l))
		}
		if !norm.NFC.IsNormalString(l) || hasUpperASCII(l) {
			t.Fatalf("Local(%q) = %q: not NFC, or upper-case ASCII", addr, l)
		}
		if want := norm.NFD.String(smtp.LowerASCII(norm.NFC.String(addr))); norm.NFD.String(l) != want {
			t.Fatalf("Local(%q) = %q folds more than ASCII letters", addr, l)
		}
		d, err := Domain(addr)
		if err == nil {
			if !smtp.IsASCII(d) || hasUpperASCII(d) {
				t.Fatalf("Domain(%q) = %q: not a lower-case A-label form", addr, d)
			}
			if d2, err := Domain(d); err != nil || d2 != d {
				t.Fatalf("Domain(%q) = %q, but Domain(%q) = %q, %v", addr, d, d, d2, err)
			}
		}
		k, err := Address(addr)
		if err != nil {
			return
		}
		if k2, err := Address(k); err != nil || k2 != k {
			t.Fatalf("Address(%q) = %q, but Address(%q) = %q, %v", addr, k, k, k2, err)
		}
	})
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func TestKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Alice@Example.ORG", "alice@example.org"},
		{"\u00c9lise@b\u00fccher.example", "\u00c9lise@xn--bcher-kva.example"},
		{"postmaster", "postmaster"},
		// Not a valid domain: a key of its own, ASCII case folded, the
		// Kelvin sign kept.
		{"Alice@Wor\u212A.test", "\x00alice@wor\u212A.test"},
	} {
		if got := Key(tt.in); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if Key("alice@wor\u212A.test") == Key("alice@work.test") {
		t.Error("the Kelvin sign's domain has the key of work.test")
	}
	if got, want := DomainKey("WOR\u212A.test"), "\x00wor\u212A.test"; got != want {
		t.Errorf("DomainKey = %q, want %q", got, want)
	}
	if got := DomainKey("B\u00fccher.example."); got != "xn--bcher-kva.example" {
		t.Errorf("DomainKey = %q", got)
	}
}

func TestDomainOf(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a@b.test", "b.test"},
		{"\"a@x\"@B.test", "B.test"},
		{"postmaster", ""},
		{"a@", ""},
	} {
		if got := DomainOf(tt.in); got != tt.want {
			t.Errorf("DomainOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
