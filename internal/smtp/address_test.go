package smtp

import (
	"errors"
	"strings"
	"testing"
)

// code returns "CODE ENH" of an *Error, "" for nil and "?" for another
// error.
func code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		return "?" + err.Error()
	}
	return strings.TrimSpace(e.Error()[:len("000 0.0.0")])
}

func TestParseMailFrom(t *testing.T) {
	long := strings.Repeat("a", 64)
	label := strings.Repeat("d", 63)
	tests := []struct {
		arg    string
		utf8   bool
		want   string // Path.Addr.String(), "<>" for Null
		params string // "K=V K=V"
		code   string // "" for success
	}{
		{"FROM:<a@example.com>", false, "a@example.com", "", ""},
		{"from:<a@example.com>", false, "a@example.com", "", ""},
		{"From: <a@example.com>", false, "a@example.com", "", ""},
		{"FROM:<A.B@Example.COM>", false, "A.B@example.com", "", ""},
		{"FROM:<>", false, "<>", "", ""},
		{"FROM: <>", false, "<>", "", ""},
		{"FROM:<> SIZE=100 BODY=8BITMIME", false, "<>", "SIZE=100 BODY=8BITMIME", ""},
		{"FROM:<a@b.c> size=100", false, "a@b.c", "SIZE=100", ""},
		{"FROM:<a@b.c> SMTPUTF8", false, "a@b.c", "SMTPUTF8=", ""},
		{"FROM:<a@b.c> X-FOO=bar AUTH=<>", false, "a@b.c", "X-FOO=bar AUTH=<>", ""},
		{"FROM:<a@b.c>  SIZE=1  BODY=7BIT ", false, "a@b.c", "SIZE=1 BODY=7BIT", ""},
		{`FROM:<"a b"@b.c>`, false, `"a b"@b.c`, "", ""},
		{`FROM:<"a>b"@b.c>`, false, `"a>b"@b.c`, "", ""},
		{`FROM:<"a\"b\\c"@b.c>`, false, `"a\"b\\c"@b.c`, "", ""},
		{`FROM:<"abc"@b.c>`, false, `abc@b.c`, "", ""},
		{`FROM:<""@b.c>`, false, `""@b.c`, "", ""},
		{"FROM:<a@[192.0.2.1]>", false, "a@[192.0.2.1]", "", ""},
		{"FROM:<a@[IPv6:2001:DB8:0::1]>", false, "a@[IPv6:2001:db8::1]", "", ""},
		{"FROM:<a@[ipv6:::1]>", false, "a@[IPv6:::1]", "", ""},
		{"FROM:<@x.org,@y.org:a@b.c>", false, "a@b.c", "", ""},
		{"FROM:<" + long + "@b.c>", false, long + "@b.c", "", ""},
		{"FROM:<a@" + label + ".c>", false, "a@" + label + ".c", "", ""},
		{"FROM:<!#$%&'*+-/=?^_`{|}~@b.c>", false, "!#$%&'*+-/=?^_`{|}~@b.c", "", ""},
		{"FROM:<a@xn--bcher-kva.example>", false, "a@xn--bcher-kva.example", "", ""},
		{"FROM:<jörg@bücher.example> SMTPUTF8", true, "jörg@bücher.example", "SMTPUTF8=", ""},
		{"FROM:<a@b.c> SMTPUTF8 X=ü", true, "a@b.c", "SMTPUTF8= X=ü", ""},

		// 501 5.5.4: syntax of the command and its parameters.
		{"", false, "", "", "501 5.5.4"},
		{"FROM", false, "", "", "501 5.5.4"},
		{"FROM:", false, "", "", "501 5.5.4"},
		{"FROM:a@b.c", false, "", "", "501 5.5.4"},
		{"FROM:  <a@b.c>", false, "", "", "501 5.5.4"},
		{"FROM :<a@b.c>", false, "", "", "501 5.5.4"},
		{"FROM:\t<a@b.c>", false, "", "", "501 5.5.4"},
		{"TO:<a@b.c>", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c>x", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c>>", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> SIZE=1 SIZE=2", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> SIZE=1 size=2", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> SIZE=", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> =1", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> -X=1", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X_Y=1", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=a=b", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=a\tb", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=a\x00", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=a\x7f", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=ü", true, "", "", "501 5.5.4"},
		{"FROM:<a@b.c> X=ü SMTPUTF8", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c>\x00", false, "", "", "501 5.5.4"},

		// 501 5.1.7: the address.
		{"FROM:<a>", false, "", "", "501 5.1.7"},
		{"FROM:<a@>", false, "", "", "501 5.1.7"},
		{"FROM:<@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b@c>", false, "", "", "501 5.1.7"},
		{"FROM:<.a@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a.@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a..b@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a b@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a\x00@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a\r\n@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a\t@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b.c\x00>", false, "", "", "501 5.1.7"},
		{"FROM:<\"a\x00\"@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<\"a\\\x00\"@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<\"a\"b@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<\"ab@b.c>", false, "", "", "501 5.5.4"},
		{"FROM:<a" + long + "@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<\"" + long[2:] + "\\a\"@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b..c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@.b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b.c.>", false, "", "", "501 5.1.7"},
		{"FROM:<a@-b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b-.c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@b_c.d>", false, "", "", "501 5.1.7"},
		{"FROM:<a@d" + label + ".c>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[192.0.2.256]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[192.0.2.01]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[::1]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[IPv6:192.0.2.1]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[IPv6:fe80::1%eth0]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[x-tag:foo]>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[192.0.2.1>", false, "", "", "501 5.1.7"},
		{"FROM:<a@[]>", false, "", "", "501 5.1.7"},
		{"FROM:<@x.org:>", false, "", "", "501 5.1.7"},
		{"FROM:<@x.org,a@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<@x.org,:a@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<@:a@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<@[1.2.3.4]:a@b.c>", false, "", "", "501 5.1.7"},
		{"FROM:<Postmaster>", false, "", "", "501 5.1.7"},
		{"FROM:<a@" + strings.Repeat(label+".", 4)[:253] + ">", false, "", "", "501 5.1.7"},
		{"FROM:<jörg@bücher.example> SMTPUTF8", true, "jörg@bücher.example", "SMTPUTF8=", ""},
		{"FROM:<j\xffrg@b.c> SMTPUTF8", true, "", "", "501 5.1.7"},
		{"FROM:<j\u0085rg@b.c> SMTPUTF8", true, "", "", "501 5.1.7"},
		{"FROM:<a@b\u2024c> SMTPUTF8", true, "", "", "501 5.1.7"},
		{"FROM:<a@b\uff0ec> SMTPUTF8", true, "", "", "501 5.1.7"},

		// 553 5.6.7: non-ASCII without SMTPUTF8 (RFC 6531 §3.5).
		{"FROM:<jörg@b.c>", true, "", "", "553 5.6.7"},
		{"FROM:<jörg@b.c> SMTPUTF8", false, "", "", "553 5.6.7"},
		{"FROM:<a@bücher.example>", true, "", "", "553 5.6.7"},
		{"FROM:<j\xffrg@b.c>", false, "", "", "553 5.6.7"},
	}
	for _, tt := range tests {
		p, params, err := ParseMailFrom(tt.arg, tt.utf8)
		checkPath(t, "ParseMailFrom", tt.arg, tt.utf8, p, params, err, tt.want, tt.params, tt.code)
	}
}

// checkPath compares one result of ParseMailFrom or ParseRcptTo.
func checkPath(t *testing.T, fn, arg string, utf8 bool, p Path, params Params, err error, want, wantParams, wantCode string) {
	t.Helper()
	if got := code(err); got != wantCode {
		t.Errorf("%s(%q, %v) error %v, want %q", fn, arg, utf8, err, wantCode)
		return
	}
	if err != nil {
		if p != (Path{}) || params != nil {
			t.Errorf("%s(%q, %v) returned %+v, %v with an error", fn, arg, utf8, p, params)
		}
		return
	}
	got := p.Addr.String()
	if p.Null {
		got = "<>"
	}
	if got != want {
		t.Errorf("%s(%q, %v) = %q, want %q", fn, arg, utf8, got, want)
	}
	if params == nil {
		t.Errorf("%s(%q, %v) returned nil Params", fn, arg, utf8)
	}
	var kv []string
	if wantParams != "" {
		kv = strings.Split(wantParams, " ")
	}
	if len(params) != len(kv) {
		t.Errorf("%s(%q, %v) params = %v, want %v", fn, arg, utf8, params, wantParams)
	}
	for _, f := range kv {
		k, v, _ := strings.Cut(f, "=")
		if got, ok := params[k]; !ok || got != v {
			t.Errorf("%s(%q, %v) params[%q] = %q, %v; want %q", fn, arg, utf8, k, got, ok, v)
		}
	}
}

func TestParseRcptTo(t *testing.T) {
	tests := []struct {
		arg    string
		utf8   bool
		want   string
		params string
		code   string
	}{
		{"TO:<a@example.com>", false, "a@example.com", "", ""},
		{"to: <a@EXAMPLE.com>", false, "a@example.com", "", ""},
		{"TO:<a@b.c> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.c", false, "a@b.c", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.c", ""},
		{"TO:<@x.org,@y.org:a@b.c>", false, "a@b.c", "", ""},
		{"TO:<Postmaster>", false, "postmaster", "", ""},
		{"TO:<postmaster>", false, "postmaster", "", ""},
		{"TO:<POSTMASTER>", false, "postmaster", "", ""},
		{"TO:<Postmaster@Example.COM>", false, "Postmaster@example.com", "", ""},
		{"TO:<jörg@bücher.example>", true, "jörg@bücher.example", "", ""},
		{"TO:<\"jörg x\"@b.c>", true, "\"jörg x\"@b.c", "", ""},

		{"TO:<>", false, "", "", "501 5.1.3"},
		{"TO:<a>", false, "", "", "501 5.1.3"},
		{"TO:<Postmaster >", false, "", "", "501 5.1.3"},
		{"TO:<postmaſter>", true, "", "", "501 5.1.3"},
		{"TO:<a@b..c>", false, "", "", "501 5.1.3"},
		{"TO:<a@b.c\x00>", false, "", "", "501 5.1.3"},
		{"TO:<@x.org:>", false, "", "", "501 5.1.3"},
		{"TO:<a@" + strings.Repeat("b", 250) + ">", false, "", "", "501 5.1.3"},

		{"TO:<a@b.c", false, "", "", "501 5.5.4"},
		{"TO:a@b.c", false, "", "", "501 5.5.4"},
		{"TO:  <a@b.c>", false, "", "", "501 5.5.4"},
		{"FROM:<a@b.c>", false, "", "", "501 5.5.4"},
		{"TO:<a@b.c> X=1 x=2", false, "", "", "501 5.5.4"},
		{"TO:<a@b.c> X=ü", false, "", "", "501 5.5.4"},

		{"TO:<jörg@b.c>", false, "", "", "553 5.6.7"},
		{"TO:<jörg@b.c> SMTPUTF8", false, "", "", "553 5.6.7"},
		{"TO:<postmaſter>", false, "", "", "553 5.6.7"},
	}
	for _, tt := range tests {
		p, params, err := ParseRcptTo(tt.arg, tt.utf8)
		checkPath(t, "ParseRcptTo", tt.arg, tt.utf8, p, params, err, tt.want, tt.params, tt.code)
		if err == nil && strings.EqualFold(tt.want, "postmaster") {
			if !p.Postmaster || p.Addr != (Address{Local: "postmaster"}) {
				t.Errorf("ParseRcptTo(%q) = %+v, want the Postmaster path", tt.arg, p)
			}
		}
	}
}

func TestPathLength(t *testing.T) {
	// RFC 5321 §4.5.3.1.3: 256 octets including the angle brackets.
	local := strings.Repeat("a", 64)
	domain := func(n int) string {
		var labels []string
		for n > 0 {
			k := min(n, 63)
			if n-k == 1 { // never leave a label of length 0 after the dot
				k--
			}
			labels = append(labels, strings.Repeat("d", k))
			n -= k + 1
		}
		return strings.Join(labels, ".")
	}
	ok := local + "@" + domain(254-65)
	if len(ok)+2 != 256 {
		t.Fatalf("test path is %d octets", len(ok)+2)
	}
	if _, _, err := ParseRcptTo("TO:<"+ok+">", false); err != nil {
		t.Errorf("path of 256 octets: %v", err)
	}
	tooLong := local + "@" + domain(255-65)
	if _, _, err := ParseRcptTo("TO:<"+tooLong+">", false); code(err) != "501 5.1.3" {
		t.Errorf("path of 257 octets: %v, want 501 5.1.3", err)
	}
	if _, err := ParseAddress(tooLong, false); err != nil {
		t.Errorf("ParseAddress of a 255-octet address: %v", err)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in     string
		utf8   bool
		local  string
		domain string
		code   string
	}{
		{"a@b.c", false, "a", "b.c", ""},
		{"A@B.C", false, "A", "b.c", ""},
		{`"a b"@b.c`, false, "a b", "b.c", ""},
		{`"a\"b"@b.c`, false, `a"b`, "b.c", ""},
		{`"a\b"@b.c`, false, `ab`, "b.c", ""},
		{`"\0"@b.c`, false, `0`, "b.c", ""},
		{`"\\"@b.c`, false, `\`, "b.c", ""},
		{"a@[10.0.0.1]", false, "a", "[10.0.0.1]", ""},
		{"a@[IPv6:0:0:0:0:0:0:0:1]", false, "a", "[IPv6:::1]", ""},
		{"a@[IPv6:::ffff:10.0.0.1]", false, "a", "[IPv6:::ffff:10.0.0.1]", ""},
		{"ü@Bücher.DE", true, "ü", "bücher.de", ""},
		{"a@b.c.d.e.f", false, "a", "b.c.d.e.f", ""},
		{"a@1.2.3.4", false, "a", "1.2.3.4", ""},
		{strings.Repeat("a", 64) + "@b", false, strings.Repeat("a", 64), "b", ""},
		{"a@" + strings.Repeat("b.", 127) + "c", false, "a", strings.Repeat("b.", 127) + "c", ""},

		{"", false, "", "", "501 5.1.3"},
		{"a", false, "", "", "501 5.1.3"},
		{"@b.c", false, "", "", "501 5.1.3"},
		{"a@", false, "", "", "501 5.1.3"},
		{"<a@b.c>", false, "", "", "501 5.1.3"},
		{"a@b.c ", false, "", "", "501 5.1.3"},
		{" a@b.c", false, "", "", "501 5.1.3"},
		{"a@b,c", false, "", "", "501 5.1.3"},
		{strings.Repeat("a", 65) + "@b", false, "", "", "501 5.1.3"},
		{"a@" + strings.Repeat("b.", 127) + "cd", false, "", "", "501 5.1.3"},
		{"ü@b.c", false, "", "", "553 5.6.7"},
		{"a@ü.c", false, "", "", "553 5.6.7"},
		{"\xff@b.c", true, "", "", "501 5.1.3"},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in, tt.utf8)
		if got := code(err); got != tt.code {
			t.Errorf("ParseAddress(%q, %v) error %v, want %q", tt.in, tt.utf8, err, tt.code)
			continue
		}
		if err == nil && (a.Local != tt.local || a.Domain != tt.domain) {
			t.Errorf("ParseAddress(%q, %v) = %+v, want {%q %q}", tt.in, tt.utf8, a, tt.local, tt.domain)
		}
	}
}

func TestAddressString(t *testing.T) {
	tests := []struct {
		a    Address
		want string
	}{
		{Address{"a", "b.c"}, "a@b.c"},
		{Address{"a.b", "b.c"}, "a.b@b.c"},
		{Address{"a b", "b.c"}, `"a b"@b.c`},
		{Address{`a"b\c`, "b.c"}, `"a\"b\\c"@b.c`},
		{Address{".a", "b.c"}, `".a"@b.c`},
		{Address{"a..b", "b.c"}, `"a..b"@b.c`},
		{Address{"", "b.c"}, `""@b.c`},
		{Address{"a@b", "b.c"}, `"a@b"@b.c`},
		{Address{"jörg", "bücher.de"}, "jörg@bücher.de"},
		{Address{"postmaster", ""}, "postmaster"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}
