package mailauth

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
)

// FuzzParseSignature checks that the DKIM-Signature parser never panics
// and that what it accepts has the required tags.
func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{
		"v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=ed; t=1795771800; h=from:from:subject; bh=AAAA; b=BBBB",
		"v=1; a=rsa-sha256; d=example.org; s=x; h=From; bh=; b=; i=@sub.example.org; x=1; t=2",
		"v=1;;;", "=", "a=b=c; a=d", "v=1; i=user; d=x; s=y; h=from; a=x; b=; bh=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseSignature(v)
		if err != nil {
			return
		}
		if s.Version != "1" || s.Domain == "" || s.Selector == "" || len(s.Headers) == 0 {
			t.Errorf("accepted %q as %+v", v, s)
		}
		if s.Expiration != 0 && s.Timestamp != 0 && s.Expiration < s.Timestamp {
			t.Errorf("x before t accepted: %q", v)
		}
	})
}

// FuzzParseDMARC checks that the DMARC record parser never panics and
// that what it accepts is a valid policy.
func FuzzParseDMARC(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject", "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;rua=mailto:d@example.com",
		"v=DMARC1; rua=mailto:a@b", "v=DMARC1; p=none; pct=-1", "v=DMARC1", "p=reject", "v=DMARC1; p=reject; p=none",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseDMARC(txt)
		if err != nil {
			return
		}
		if _, ok := parsePolicy(string(r.Policy)); !ok || r.Percent < 0 || r.Percent > 100 {
			t.Errorf("accepted %q as %+v", txt, r)
		}
		if r.SubdomainPolicy != "" {
			if _, ok := parsePolicy(string(r.SubdomainPolicy)); !ok {
				t.Errorf("bad sp in %+v", r)
			}
		}
	})
}

// FuzzVerifyDKIM feeds messages to verification with a fixed key record:
// every signature gets a result, no panic, no error.
func FuzzVerifyDKIM(f *testing.F) {
	keys := testKeys(f, "example.org")[:1]
	s, _ := NewSigner(keys, clock)
	h, _ := s.Sign(sampleMessage)
	f.Add(append(h, sampleMessage...))
	f.Add([]byte("DKIM-Signature: v=1\r\n\r\n"))
	f.Add([]byte("DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=ed; h=from; bh=; b=\r\nFrom: a\r\n"))
	rec, _ := KeyRecord(keys[0].Key)
	r := mapResolver{"ed._domainkey.example.org": {rec}}
	f.Fuzz(func(t *testing.T, m []byte) {
		for _, res := range VerifyDKIM(context.Background(), r, m, VerifyOptions{MaxSignatures: 5, Now: clock}) {
			switch res.Result {
			case "pass", "fail", "policy", "neutral", "temperror", "permerror":
			default:
				t.Errorf("result %q", res.Result)
			}
			if res.Result == "pass" && !strings.Contains(string(m), res.B) {
				t.Errorf("pass for a b= not in the message")
			}
		}
	})
}

// FuzzAuthservID checks the authserv-id extraction on arbitrary values.
func FuzzAuthservID(f *testing.F) {
	f.Add("mx.example.org; spf=pass")
	f.Add("(c (nested) \\) x) mx.example.org.; none")
	f.Fuzz(func(t *testing.T, v string) {
		id := authservID(v)
		if strings.ContainsAny(id, "; \t\r\n(") {
			t.Errorf("authservID(%q) = %q", v, id)
		}
	})
}

// FuzzCheckSPF runs the SPF check (RFC 7208, blitiri.com.ar/go/spf with
// Postern's resolver) on records from the fuzzer, served by a real DNS
// server on loopback: the sender's domain publishes one, and a second
// name that its include:, redirect= or exists: may reach publishes
// another. Whatever the records, the check ends within its lookup limits
// with one of RFC 7208's seven results.
func FuzzCheckSPF(f *testing.F) {
	for _, s := range [][2]string{
		{"v=spf1 -all", ""},
		{"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx ptr -all", ""},
		{"v=spf1 include:inc.example.com ~all", "v=spf1 ip4:192.0.2.1 -all"},
		{"v=spf1 redirect=inc.example.com", "v=spf1 redirect=example.com"},
		{"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all", "v=spf1 +all"},
		{"v=spf1 include:inc.example.com include:inc.example.com include:inc.example.com", "v=spf1 include:example.com"},
		{"v=spf1 a:%{d2}.%{h}.%{v}.%{i}.%{p}.%{o}.%{s} exp=inc.example.com -all", "%{i} is not allowed"},
		{"v=spf1 ip4:192.0.2.1/33 mx:/129 ?all", ""},
		{"v=spf10 -all", "v=spf1 a//0 a/32//128"},
	} {
		f.Add(s[0], s[1], []byte{192, 0, 2, 1}, "user@example.com")
		f.Add(s[0], s[1], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "")
	}
	srv := dnstest.New(f, dnstest.Zone{
		"example.com":     {dnstest.A("192.0.2.1"), dnstest.MX(10, "mx.example.com")},
		"mx.example.com":  {dnstest.A("192.0.2.2"), dnstest.AAAA("2001:db8::2")},
		"inc.example.com": {dnstest.A("192.0.2.3")},
	})
	results := map[string]bool{"none": true, "neutral": true, "pass": true, "fail": true,
		"softfail": true, "temperror": true, "permerror": true}
	f.Fuzz(func(t *testing.T, record, included string, ipb []byte, sender string) {
		ip, ok := netip.AddrFromSlice(ipb)
		if !ok {
			return
		}
		srv.Set("example.com", dnstest.A("192.0.2.1"), dnstest.MX(10, "mx.example.com"), dnstest.TXT(record))
		srv.Set("inc.example.com", dnstest.A("192.0.2.3"), dnstest.TXT(included))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		got := CheckSPF(ctx, srv.Resolver(), ip, "mx.example.com", sender, "mailfrom")
		if !results[got.Result] {
			t.Fatalf("CheckSPF(%q) = %q, not an RFC 7208 result", record, got.Result)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("CheckSPF(%q, %q) took %v", record, included, d)
		}
	})
}

// relaxedBodyModel is the relaxed body canonicalization (RFC 6376
// §3.4.4) written plainly, line by line on the whole body: the model the
// streaming relaxedBodyWriter is checked against.
func relaxedBodyModel(body []byte) []byte {
	var out []byte
	pending := 0
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		var canon []byte
		space := false
		for _, b := range line {
			if b == ' ' || b == '\t' {
				space = true
				continue
			}
			if space {
				canon = append(canon, ' ')
			}
			space = false
			canon = append(canon, b)
		}
		if len(canon) == 0 {
			pending++
			continue
		}
		for ; pending > 0; pending-- {
			out = append(out, "\r\n"...)
		}
		out = append(append(out, canon...), "\r\n"...)
	}
	return out
}

// FuzzRelaxedBody checks that the streaming canonicalization, fed in
// three pieces split anywhere, gives what the model gives for the whole.
func FuzzRelaxedBody(f *testing.F) {
	for _, s := range []string{"", "a", " C \r\nD \t E\r\n\r\n\r\n", "a\r", "a\r\r\n", " \r\n\t\r\n", "x\r\n\r\n\r\ny\r\n", "a\rb\r\n"} {
		f.Add([]byte(s), uint16(1), uint16(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, i, j uint16) {
		a := int(i) % (len(body) + 1)
		b := a + int(j)%(len(body)-a+1)
		var out bytes.Buffer
		w := relaxedBodyWriter{w: &out}
		w.Write(body[:a])
		w.Write(body[a:b])
		w.Write(body[b:])
		w.Close()
		if want := relaxedBodyModel(body); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%q split at %d, %d: %q, want %q", body, a, b, out.Bytes(), want)
		}
	})
}
