package queue

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var dsnNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const origMessage = "Received: from client.example.com ([2001:db8::1])\r\n" +
	"\tby mail.example.net with ESMTPSA id t0000000000000000001\r\n" +
	"\tfor <bob@example.org>; Fri, 27 Nov 2026 08:00:00 +0000\r\n" +
	"From: Alice <alice@example.com>\r\n" +
	"To: Bob <bob@example.org>, carl@example.org\r\n" +
	"Subject: Lunch?\r\n" +
	"Message-ID: <lunch-1@example.com>\r\n" +
	"\r\n" +
	"Shall we?\r\n"

func dsnOrig() *smtp.Envelope {
	env := spooltest.Env("t0000000000000000001", "bob@example.org", "carl@example.org", "dan@example.net")
	env.ReceivedAt = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	return env
}

func TestDSNGolden(t *testing.T) {
	last := dsnNow.Add(-time.Minute)
	cases := []struct {
		name  string
		orig  *smtp.Envelope
		msg   string
		rcpts []dsnRecipient
	}{
		{"dsn-failed.golden", dsnOrig(), origMessage, []dsnRecipient{
			{addr: "bob@example.org", action: actionFailed, status: "5.1.1", remoteMTA: "mx1.example.org",
				diagnostic: "smtp; 550 5.1.1 <bob@example.org>: User unknown", lastAttempt: last},
			{addr: "carl@example.org", action: actionFailed, status: statusExpired, remoteMTA: "mx2.example.org",
				diagnostic: "smtp; 451 4.3.0 Try again later", lastAttempt: last},
		}},
		{"dsn-delayed.golden", dsnOrig(), origMessage, []dsnRecipient{
			{addr: "dan@example.net", action: actionDelayed, status: "4.4.1",
				diagnostic: "X-Postern; dial tcp 192.0.2.1:25: connection refused", lastAttempt: last,
				retryUntil: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)},
		}},
		{"dsn-long.golden", dsnOrig(), origMessage, []dsnRecipient{
			{addr: "bob@example.org", action: actionFailed, status: "5.7.1", remoteMTA: "mx1.example.org",
				diagnostic: "smtp; 550 5.7.1 Message rejected because of a policy that is explained at length " +
					"on https://example.org/a/very/long/url/without/any/spaces/in/it/at/all/that/goes/on/and/on/and/on " +
					"and then more words follow", lastAttempt: last},
		}},
		{"dsn-loop.golden", dsnOrig(), origMessage, []dsnRecipient{
			{addr: "bob@example.org", action: actionFailed, status: "5.4.6",
				diagnostic: "X-Postern; Routing loop detected (51 Received header fields)", lastAttempt: last},
		}},
		{"dsn-full.golden", dsnOrig(), origMessage, []dsnRecipient{
			{addr: "bob@example.org", orcpt: "rfc822;bob@example.org", action: actionFailed, status: "5.1.1", remoteMTA: "mx1.example.org",
				diagnostic: "smtp; 550 5.1.1 <bob@example.org>: User unknown", lastAttempt: last},
		}},
		{"dsn-success.golden", func() *smtp.Envelope {
			e := dsnOrig()
			e.EnvID = "QQ314159"
			return e
		}(), origMessage, []dsnRecipient{
			{addr: "bob@example.org", orcpt: "rfc822;robert@example.org", action: actionDelivered, status: "2.0.0", lastAttempt: last},
			{addr: "dan@example.net", action: actionRelayed, status: "2.0.0", remoteMTA: "mx.example.net",
				diagnostic: "smtp; 250 2.0.0 Ok: queued as 4Xyz", lastAttempt: last},
		}},
		{"dsn-utf8.golden", func() *smtp.Envelope {
			e := dsnOrig()
			e.From = "jörg@example.com"
			return e
		}(), "From: Jörg <jörg@example.com>\r\nSubject: Grüße\r\n\r\nHallo\r\n", []dsnRecipient{
			{addr: "δοκιμή@example.org", action: actionFailed, status: "5.1.1", remoteMTA: "mx.example.org",
				diagnostic: "smtp; 550 5.1.1 No such user", lastAttempt: last},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := dsnInput{hostname: "mail.example.net", id: "dsn00000000000000001", now: dsnNow,
				orig: tc.orig, header: headerSection([]byte(tc.msg)), rcpts: tc.rcpts}
			full := tc.name == "dsn-full.golden" // RET=FULL: the message returned
			if full {
				in.full = []byte(tc.msg)
			}
			env, data := buildDSN(in)
			golden(t, tc.name, data)
			if env.From != "" || len(env.Recipients) != 1 || env.Recipients[0] != tc.orig.From || env.ID != "dsn00000000000000001" {
				t.Errorf("DSN envelope %+v", env)
			}
			checkDSNStructure(t, data, tc.orig, tc.rcpts, full)
		})
	}
}

// checkDSNStructure parses a DSN as MIME and checks what RFC 3464 and
// RFC 6522 require of it.
func checkDSNStructure(t *testing.T, data []byte, orig *smtp.Envelope, rcpts []dsnRecipient, full bool) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) ||
		bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("bare CR or LF in the DSN")
	}
	for _, l := range strings.Split(string(data), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line longer than 998 octets: %.60q...", l)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if got := msg.Header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted: %q", got)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	var status, headers []byte
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		types = append(types, ct)
		b, _ := io.ReadAll(part)
		switch len(types) {
		case 2:
			status = b
		case 3:
			headers = b
		}
	}
	global := orig.From != "" && !smtp.IsASCII(orig.From)
	for _, r := range rcpts {
		global = global || !smtp.IsASCII(r.addr)
	}
	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if global {
		want = []string{"text/plain", "message/global-delivery-status", "message/global-headers"}
	}
	if full {
		want[2] = "message/rfc822"
	}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("parts %v, want %v", types, want)
	}
	// The delivery-status part: one per-message block, then one block per
	// recipient (RFC 3464 §2.1), each a header section.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(status)))
	perMsg, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("per-message fields: %v", err)
	}
	if perMsg.Get("Reporting-MTA") != "dns; mail.example.net" || perMsg.Get("X-Postern-Queue-Id") != orig.ID ||
		perMsg.Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", perMsg)
	}
	for i, r := range rcpts {
		f, err := tp.ReadMIMEHeader()
		if err != nil && !(err == io.EOF && len(f) > 0) {
			t.Fatalf("recipient %d fields: %v", i, err)
		}
		if !strings.HasSuffix(f.Get("Final-Recipient"), "; "+r.addr) || f.Get("Action") != r.action || f.Get("Status") != r.status {
			t.Errorf("recipient %d fields %v", i, f)
		}
		if r.remoteMTA != "" && f.Get("Remote-Mta") != "dns; "+r.remoteMTA {
			t.Errorf("recipient %d Remote-MTA %q", i, f.Get("Remote-Mta"))
		}
		if f.Get("Diagnostic-Code") != r.diagnostic || f.Get("Last-Attempt-Date") == "" {
			t.Errorf("recipient %d fields %v", i, f)
		}
		if (r.action == actionDelayed) != (f.Get("Will-Retry-Until") != "") {
			t.Errorf("recipient %d Will-Retry-Until %q", i, f.Get("Will-Retry-Until"))
		}
	}
	switch {
	case full && !bytes.HasSuffix(headers, []byte("\r\n\r\nShall we?\r\n")):
		t.Errorf("message part %q", headers)
	case !full && (!bytes.Contains(headers, []byte("Subject: ")) || bytes.Contains(headers, []byte("\r\n\r\n"))):
		t.Errorf("headers part %q", headers)
	}
}

func TestDiagnosticText(t *testing.T) {
	long := strings.Repeat("é", 600)
	for in, want := range map[string]string{
		"550-5.1.1 first\r\n550 5.1.1 second": "550-5.1.1 first 550 5.1.1 second",
		"a\x00b\tc":                           "a b c",
	} {
		if got := diagnosticText(in); got != want {
			t.Errorf("diagnosticText(%q) = %q, want %q", in, got, want)
		}
	}
	got := diagnosticText(long)
	if len(got) > maxDiagnostic+3 || !strings.HasSuffix(got, "...") || !isValidUTF8(got) {
		t.Errorf("long diagnostic cut badly: %d bytes", len(got))
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestBackoff(t *testing.T) {
	p := RetryPolicy{First: time.Minute, Max: time.Hour, GiveUp: 5 * 24 * time.Hour, Jitter: 0.2}
	for _, c := range []struct {
		attempts int
		rnd      float64
		want     time.Duration
	}{
		{1, 0.5, time.Minute},
		{2, 0.5, 2 * time.Minute},
		{3, 0.5, 4 * time.Minute},
		{6, 0.5, 32 * time.Minute},
		{7, 0.5, time.Hour}, // 64 minutes, capped
		{100, 0.5, time.Hour},
		{1, 0, 48 * time.Second},    // -20%
		{1, 0.75, 66 * time.Second}, // +10%
		{7, 0, 48 * time.Minute},    // the cap is jittered too
	} {
		if got := p.Backoff(c.attempts, c.rnd); got != c.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", c.attempts, c.rnd, got, c.want)
		}
	}
	// The zero policy is the default one.
	if got := (RetryPolicy{}).Backoff(3, 0.5); got != 4*time.Minute {
		t.Errorf("default Backoff(3) = %v", got)
	}
	if got := (RetryPolicy{First: time.Second}).Backoff(20, 0.5); got != time.Hour {
		t.Errorf("partial policy: Max not defaulted: %v", got)
	}
	recv := dsnNow
	if p.Expired(recv, recv.Add(5*24*time.Hour)) || !p.Expired(recv, recv.Add(5*24*time.Hour+time.Second)) {
		t.Error("Expired at the wrong time")
	}
	d := DefaultRetryPolicy()
	st := spool.RecipientState{}
	if d.WarnDue(recv, recv.Add(4*time.Hour-time.Second), st) || !d.WarnDue(recv, recv.Add(4*time.Hour), st) {
		t.Error("WarnDue at the wrong time")
	}
	st.Warned = true
	if d.WarnDue(recv, recv.Add(5*time.Hour), st) {
		t.Error("WarnDue twice")
	}
	if (RetryPolicy{First: time.Second}).WarnDue(recv, recv.Add(24*time.Hour), spool.RecipientState{}) {
		t.Error("DelayWarning 0 in a set policy must mean no warning")
	}
	// The old RetryFunc keeps its schedule.
	env := &smtp.Envelope{ReceivedAt: recv}
	if next, ok := DefaultRetry(env, spool.RecipientState{Attempts: 3}, recv); !ok || next.Sub(recv) != 4*time.Minute {
		t.Errorf("DefaultRetry: %v %v", next, ok)
	}
	if _, ok := DefaultRetry(env, spool.RecipientState{Attempts: 3}, recv.Add(6*24*time.Hour)); ok {
		t.Error("DefaultRetry did not give up")
	}
}

func TestStatusCode(t *testing.T) {
	for _, c := range []struct {
		code  string
		class byte
		want  string
	}{
		{"5.1.1", '5', "5.1.1"},
		{"4.1.1", '5', "5.1.1"}, // a permanent failure is class 5
		{"5.7.26", '4', "4.7.26"},
		{"", '2', "2.0.0"},
		{"5.1", '5', "5.0.0"},
		{"5.1.1\r\nX: y", '5', "5.0.0"},
		{"3.1.1", '5', "5.0.0"},
		{"5.1234.1", '5', "5.0.0"},
		{"x", '4', "4.0.0"},
	} {
		if got := statusCode(c.code, c.class); got != c.want {
			t.Errorf("statusCode(%q, %c) = %q, want %q", c.code, c.class, got, c.want)
		}
	}
}
