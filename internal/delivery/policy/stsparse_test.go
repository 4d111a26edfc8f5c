package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSTSPolicy(t *testing.T) {
	t.Parallel()
	good := []struct {
		name, body string
		want       STSPolicy
	}{
		{"crlf", "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.Example.NET.\r\nmax_age: 86400\r\n",
			STSPolicy{Mode: STSEnforce, MX: []string{"mx1.example.com", "*.example.net"}, MaxAge: 86400 * time.Second}},
		{"lf, no final newline, any order", "mode: testing\nmx:mx.example.com\nmax_age:   0\nversion: STSv1",
			STSPolicy{Mode: STSTesting, MX: []string{"mx.example.com"}, MaxAge: 0}},
		{"unknown keys ignored", "version: STSv1\nmode: enforce\nx-future: anything: at all\nmx: mx.example.com\nmax_age: 31557600\n",
			STSPolicy{Mode: STSEnforce, MX: []string{"mx.example.com"}, MaxAge: 31557600 * time.Second}},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 60\n",
			STSPolicy{Mode: STSNone, MaxAge: time.Minute}},
		{"blank lines", "\nversion: STSv1\n\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n\n",
			STSPolicy{Mode: STSEnforce, MX: []string{"mx.example.com"}, MaxAge: time.Second}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseSTSPolicy(tc.body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if p.Mode != tc.want.Mode || p.MaxAge != tc.want.MaxAge || !slices.Equal(p.MX, tc.want.MX) {
				t.Errorf("got %+v, want %+v", *p, tc.want)
			}
		})
	}
	bad := map[string]string{
		"empty":             "",
		"html":              "<html><body>hello</body></html>",
		"no version":        "mode: enforce\nmx: mx.example.com\nmax_age: 1\n",
		"wrong version":     "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n",
		"no mode":           "version: STSv1\nmx: mx.example.com\nmax_age: 1\n",
		"bad mode":          "version: STSv1\nmode: Enforce\nmx: mx.example.com\nmax_age: 1\n",
		"no max_age":        "version: STSv1\nmode: enforce\nmx: mx.example.com\n",
		"max_age too big":   "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n",
		"max_age sign":      "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n",
		"max_age 11 digits": "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 00000000001\n",
		"no mx":             "version: STSv1\nmode: enforce\nmax_age: 1\n",
		"bad mx":            "version: STSv1\nmode: enforce\nmx: mx..example.com\nmax_age: 1\n",
		"mid wildcard":      "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 1\n",
		"two modes":         "version: STSv1\nmode: enforce\nmode: none\nmx: mx.example.com\nmax_age: 1\n",
		"no colon":          "version: STSv1\nmode enforce\nmx: mx.example.com\nmax_age: 1\n",
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			if p, err := ParseSTSPolicy(body); err == nil {
				t.Errorf("parsed %+v, want an error", *p)
			} else if !strings.HasPrefix(err.Error(), "policy: ") {
				t.Errorf("error %q does not start with policy:", err)
			}
		})
	}
}

func TestSTSMatch(t *testing.T) {
	t.Parallel()
	p := &STSPolicy{MX: []string{"mx.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mx.example.com":     true,
		"mx2.example.com":    false,
		"example.com":        false,
		"a.example.net":      true,
		"example.net":        false,
		"a.b.example.net":    false,
		"xexample.net":       false,
		"a.example.net.evil": false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseSTSRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		txts []string
		id   string // "" means an error
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{[]string{"v=STSv1;id=abc"}, "abc"},
		{[]string{"v=spf1 -all", "v=STSv1; id=abc; ext=1"}, "abc"},
		{[]string{"v=STSv1; id=abc;", "v=STSv1; id=def;"}, ""}, // two records
		{nil, ""},
		{[]string{"v=STSv1;"}, ""},         // no id
		{[]string{"v=STSv1; id=ab-c"}, ""}, // bad id
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, ""},
		{[]string{"v=STSv1; id=a; id=b"}, ""},
		{[]string{"v=STSv10; id=a"}, ""},
		{[]string{"id=a; v=STSv1"}, ""},
	} {
		id, err := ParseSTSRecord(tc.txts)
		if tc.id == "" {
			if err == nil {
				t.Errorf("%q: id %q, want an error", tc.txts, id)
			}
			continue
		}
		if err != nil || id != tc.id {
			t.Errorf("%q: got %q, %v; want %q", tc.txts, id, err, tc.id)
		}
	}
}

// FuzzParseSTSPolicy checks that the policy parser never panics and that
// what it accepts keeps the RFC 8461 §3.2 limits.
func FuzzParseSTSPolicy(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Add("version: STSv1\nmode: testing\nmx: *.\nmax_age: 99999999999\n")
	f.Add("\x00:\xff\n:")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := ParseSTSPolicy(body)
		if err != nil {
			return
		}
		if p.MaxAge < 0 || p.MaxAge > maxSTSMaxAge*time.Second {
			t.Fatalf("max_age %v out of range", p.MaxAge)
		}
		switch p.Mode {
		case STSEnforce, STSTesting:
			if len(p.MX) == 0 {
				t.Fatal("no mx in an enforcing policy")
			}
		case STSNone:
		default:
			t.Fatalf("mode %q", p.Mode)
		}
		for _, m := range p.MX {
			if !validMXPattern(m) || m != strings.ToLower(m) {
				t.Fatalf("mx pattern %q", m)
			}
			p.Match(m)
		}
	})
}

// FuzzParseSTSRecord checks the TXT record parser.
func FuzzParseSTSRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=;")
	f.Fuzz(func(t *testing.T, txt string) {
		id, err := ParseSTSRecord([]string{txt})
		if err == nil && (id == "" || len(id) > 32) {
			t.Fatalf("id %q", id)
		}
	})
}
