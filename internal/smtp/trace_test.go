package smtp

import (
	"crypto/tls"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

var traceDate = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func unfold(b []byte) string { return strings.ReplaceAll(string(b), "\r\n\t", " ") }

func TestAppendReceived(t *testing.T) {
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	long := string(AppendReceived(nil, Received{Helo: strings.Repeat("a", 300), Host: "mx.example.org", Protocol: "ESMTP", Date: traceDate}))
	if !strings.Contains(long, " "+strings.Repeat("a", 255)+"\r\n") || strings.Contains(long, strings.Repeat("a", 256)) {
		t.Errorf("long HELO not cut to 255: %q", long)
	}
	got := string(AppendReceived(nil, Received{
		Helo:     "evil\r\nX-Injected: 1;()",
		Remote:   netip.MustParseAddrPort("[2001:db8::1]:25"),
		Host:     "mx.example.org",
		Protocol: "ESMTPSA",
		ID:       "0123456789abcdefghij",
		TLS:      cs,
		For:      "bob@example.org",
		Date:     traceDate,
	}))
	if strings.Count(got, "\r\n")-strings.Count(got, "\r\n\t") != 1 || !strings.HasSuffix(got, "\r\n") {
		t.Errorf("not one folded field: %q", got)
	}
	if !strings.HasPrefix(got, "Received: from evilX-Injected:1 ([IPv6:2001:db8::1]) by ") {
		t.Errorf("HELO not sanitized: %q", got)
	}
	for _, want := range []string{"([IPv6:2001:db8::1])", "(TLS1.3 TLS_AES_128_GCM_SHA256)", "for <bob@example.org>;", "with ESMTPSA id 0123456789abcdefghij"} {
		if !strings.Contains(unfold([]byte(got)), want) {
			t.Errorf("lacks %q: %q", want, got)
		}
	}
	for _, l := range strings.Split(got, "\r\n")[1:] {
		if len(l) > 78 {
			t.Errorf("line of %d chars: %q", len(l), l)
		}
	}
	// An IPv4 client without a name.
	got = unfold(AppendReceived(nil, Received{Remote: netip.MustParseAddrPort("192.0.2.1:25"), Host: "h", Protocol: "SMTP", ID: "x", Date: traceDate}))
	if want := "Received: from unknown ([192.0.2.1]) by h (Postern) with SMTP id x; Fri, 27 Nov 2026 10:00:00 +0000\r\n"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// A local submission has no client: no "from" clause, the submitting
// user in the comment, no "with".
func TestAppendReceivedLocal(t *testing.T) {
	got := string(AppendReceived(nil, Received{Host: "mx.x.test", Local: LocalUser(1000), ID: "0123456789abcdefghij", Date: traceDate}))
	want := "Received: by mx.x.test (Postern, from userid 1000) id 0123456789abcdefghij;\r\n\tFri, 27 Nov 2026 10:00:00 +0000\r\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := LocalUser(-1); got != "from userid unknown" {
		t.Errorf("LocalUser(-1) = %q", got)
	}
}

func TestProtocol(t *testing.T) {
	for _, tt := range []struct {
		esmtp, tls, auth, utf8 bool
		want                   string
	}{
		{false, false, false, false, "SMTP"},
		{true, false, false, false, "ESMTP"},
		{true, true, false, false, "ESMTPS"},
		{true, false, true, false, "ESMTPA"},
		{true, true, true, false, "ESMTPSA"},
		{true, false, false, true, "UTF8SMTP"},
		{true, true, true, true, "UTF8SMTPSA"},
		{true, true, false, true, "UTF8SMTPS"},
		{true, false, true, true, "UTF8SMTPA"},
	} {
		if got := Protocol(tt.esmtp, tt.tls, tt.auth, tt.utf8); got != tt.want {
			t.Errorf("Protocol%v = %q, want %q", tt, got, tt.want)
		}
	}
}

func TestHeaderRepair(t *testing.T) {
	for _, tt := range []struct {
		hdr  string
		want string
	}{
		{"Subject: x\r\n\r\n", "Message-ID: <id1@h.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"},
		{"message-id: <a@b>\r\nSubject: x\r\n\r\n", "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"},
		{"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID:\r\n <a@b>\r\n\r\n", ""},
		// A field in the body is not the header's.
		{"Subject: x\r\n\r\nMessage-ID: <a@b>\r\nDate: x\r\n", "Message-ID: <id1@h.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"},
	} {
		got := string(CheckHeader([]byte(tt.hdr)).Append(nil, "id1", "h.test", traceDate))
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.hdr, got, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-v]{20}$`)
	prev := ""
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		id := NewID(base.Add(time.Duration(i) * time.Microsecond))
		if !re.MatchString(id) {
			t.Fatalf("id %q", id)
		}
		if id <= prev {
			t.Fatalf("ids not time-ordered: %q then %q", prev, id)
		}
		prev = id
	}
	if NewID(base) == NewID(base) {
		t.Error("same id twice for the same instant")
	}
}

func TestEnvelopeClone(t *testing.T) {
	env := &Envelope{ID: "a", Recipients: []string{"b@x.test"}}
	c := env.Clone()
	c.Recipients[0] = "c@x.test"
	if env.Recipients[0] != "b@x.test" || c.ID != "a" {
		t.Errorf("Clone shares recipients: %+v", env)
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		NewID(traceDate): true, "t0000000000000000001": true, "M1": true, strings.Repeat("a", MaxIDLen): true,
		"": false, "../x": false, "a b": false, "id\x00": false, strings.Repeat("a", MaxIDLen+1): false, "\u00e9t\u00e9": false,
	} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v, want %v", id, !ok, ok)
		}
	}
}
