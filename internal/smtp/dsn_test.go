package smtp

import (
	"errors"
	"strings"
	"testing"
)

// wantSyntax fails unless err is a 501 5.5.4 *Error.
func wantSyntax(t *testing.T, what string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != 501 || e.Enhanced != "5.5.4" {
		t.Errorf("%s: err %v, want 501 5.5.4", what, err)
	}
}

func TestParseNotify(t *testing.T) {
	good := map[string]Notify{
		"NEVER":                 NotifyNever,
		"never":                 NotifyNever,
		"SUCCESS":               NotifySuccess,
		"Success,Failure":       NotifySuccess | NotifyFailure,
		"DELAY,FAILURE,SUCCESS": NotifySuccess | NotifyFailure | NotifyDelay,
	}
	for in, want := range good {
		got, err := ParseNotify(in)
		if err != nil || got != want {
			t.Errorf("ParseNotify(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "NEVER,SUCCESS", "FAILURE,NEVER", "SUCCESS,SUCCESS", "SUCCESS,", ",SUCCESS",
		"SUCESS", "FAILURE DELAY", "FAILURE;DELAY", "ALWAYS"} {
		_, err := ParseNotify(in)
		wantSyntax(t, "ParseNotify("+in+")", err)
	}
}

func TestNotifyWants(t *testing.T) {
	cases := []struct {
		n                         Notify
		success, failure, delayed bool
	}{
		{0, false, true, true}, // NotifyDefault: as before DSN
		{NotifyNever, false, false, false},
		{NotifySuccess, true, false, false},
		{NotifyFailure, false, true, false},
		{NotifySuccess | NotifyDelay, true, false, true},
	}
	for _, c := range cases {
		if c.n.Wants(NotifySuccess) != c.success || c.n.Wants(NotifyFailure) != c.failure || c.n.Wants(NotifyDelay) != c.delayed {
			t.Errorf("%q: Wants success/failure/delay = %v/%v/%v, want %v/%v/%v", c.n,
				c.n.Wants(NotifySuccess), c.n.Wants(NotifyFailure), c.n.Wants(NotifyDelay), c.success, c.failure, c.delayed)
		}
	}
	if s := (NotifyFailure | NotifySuccess | NotifyDelay).String(); s != "SUCCESS,FAILURE,DELAY" {
		t.Errorf("String = %q", s)
	}
}

func TestParseRet(t *testing.T) {
	for in, want := range map[string]string{"FULL": "FULL", "hdrs": "HDRS", "Full": "FULL"} {
		if got, err := ParseRet(in); err != nil || got != want {
			t.Errorf("ParseRet(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "HEADERS", "FULL,HDRS", "NONE"} {
		_, err := ParseRet(in)
		wantSyntax(t, "ParseRet("+in+")", err)
	}
}

func TestParseEnvID(t *testing.T) {
	good := map[string]string{
		"QQ314159":                    "QQ314159",
		"a+2Bb+3Dc":                   "a+b=c",
		"with+20space":                "with space",
		strings.Repeat("x", MaxEnvID): strings.Repeat("x", MaxEnvID),
	}
	for in, want := range good {
		if got, err := ParseEnvID(in); err != nil || got != want {
			t.Errorf("ParseEnvID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", strings.Repeat("x", MaxEnvID+1),
		"a+2b",    // hexchar is upper case
		"a+2",     // short hexchar
		"a+",      // lone +
		"a+GG",    // not hex
		"a+0Db",   // CR: would end the Original-Envelope-Id field
		"a+00",    // NUL
		"a+C3+A9", // 8-bit: not printable US-ASCII
		"é",
	} {
		_, err := ParseEnvID(in)
		wantSyntax(t, "ParseEnvID("+in+")", err)
	}
}

func TestParseORcpt(t *testing.T) {
	good := map[string]string{
		"rfc822;bob@example.org":              "rfc822;bob@example.org",
		"RFC822;bob+2Bext@example.org":        "RFC822;bob+ext@example.org",
		"rfc822;+22odd+20name+22@example.org": `rfc822;"odd name"@example.org`,
		`utf-8;j\x{F6}rg@example.org`:         "utf-8;jörg@example.org",
		"utf-8;jörg@example.org":              "utf-8;jörg@example.org",
		"utf-8;a+b@example.org":               "utf-8;a+b@example.org",
		"x-local;anything":                    "x-local;anything",
	}
	for in, want := range good {
		if got, err := ParseORcpt(in); err != nil || got != want {
			t.Errorf("ParseORcpt(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "bob@example.org", ";bob@example.org", "rfc822;", "rf(c;bob@example.org",
		"rfc822;bob+0D+0Aevil@example.org", // CRLF into the DSN
		"rfc822;b+2",
		"rfc822;b+e9@example.org",          // lower-case hexchar
		`utf-8;j\x{D800}rg@example.org`,    // surrogate
		`utf-8;j\x{1}rg@example.org`,       // one digit
		`utf-8;j\x{0000041}rg@example.org`, // seven digits
		`utf-8;j\xF6rg@example.org`,        // no braces
		`utf-8;a\x{0A}b`,                   // control character
		"utf-8;\xff@example.org",           // not UTF-8
		"rfc822;" + strings.Repeat("x", MaxORcpt),
	} {
		_, err := ParseORcpt(in)
		wantSyntax(t, "ParseORcpt("+in+")", err)
	}
}

func TestEncodeORcpt(t *testing.T) {
	for in, want := range map[string]string{
		"rfc822;bob+ext@example.org": "rfc822;bob+2Bext@example.org",
		`rfc822;"a b"=c@example.org`: "rfc822;\"a+20b\"+3Dc@example.org",
		"utf-8;jörg@example.org":     `utf-8;j\x{F6}rg@example.org`,
		"utf-8;a+b=c\\d@example.org": `utf-8;a\x{2B}b\x{3D}c\x{5C}d@example.org`,
	} {
		if got := EncodeORcpt(in); got != want {
			t.Errorf("EncodeORcpt(%q) = %q, want %q", in, got, want)
		}
		if back, err := ParseORcpt(EncodeORcpt(in)); err != nil || back != in {
			t.Errorf("ParseORcpt(EncodeORcpt(%q)) = %q, %v", in, back, err)
		}
	}
}

// BenchmarkRcptDSN is the cost of a RCPT with DSN parameters: the
// command's parser, then NOTIFY and ORCPT.
func BenchmarkRcptDSN(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, p, err := ParseRcptTo("TO:<other@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;other+2Bold@example.org", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseNotify(p["NOTIFY"]); err != nil {
			b.Fatal(err)
		}
		if _, err := ParseORcpt(p["ORCPT"]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestORcptRelayLength: an ORCPT taken is one that can be passed on
// within RFC 3461's 500 octets once encoded again.
func TestORcptRelayLength(t *testing.T) {
	if _, err := ParseORcpt("utf-8;" + strings.Repeat("é", 247)); err == nil {
		t.Error("took an ORCPT of 500 octets that is 1,488 once encoded again")
	}
	o, err := ParseORcpt("utf-8;" + strings.Repeat("é", 40) + "@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if out := EncodeORcpt(o); len(out) > MaxORcpt {
		t.Errorf("relayed as %d octets", len(out))
	}
}
