package smtpd

import (
	"strings"
	"testing"

	"postern/internal/smtp"
)

// TestDSNOffered checks that every listener offers DSN (RFC 3461 §3),
// before and after TLS.
func TestDSNOffered(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmission, RoleSubmissions} {
		f := newFixture(t, role)
		c := f.dial()
		got := c.do("EHLO client.example", "250 ")
		if !strings.Contains(got+"\n", "250-DSN\n") && !strings.HasSuffix(got, "250 DSN") {
			t.Errorf("%s: EHLO lacks DSN:\n%s", role, got)
		}
	}
}

// TestDSNParams checks the DSN parameters of MAIL and RCPT (RFC 3461
// §4): what a well-formed transaction says is in the spooled envelope,
// decoded; a malformed value is refused with 501 5.5.4 and a
// duplicate with 501; a parameter after HELO is 555.
func TestDSNParams(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net> RET=HDRS ENVID=QQ+2B314159", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bold@example.org", "250 2.1.5")
	c.do("RCPT TO:<carol@example.org> NOTIFY=never", "250 2.1.5")
	c.do("RCPT TO:<alice@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	env := f.spool.messages()[0].env
	if env.Ret != "HDRS" || env.EnvID != "QQ+314159" {
		t.Errorf("RET %q ENVID %q, want HDRS and QQ+314159", env.Ret, env.EnvID)
	}
	want := map[string]smtp.RcptDSN{
		"bob@example.org":   {Notify: smtp.NotifySuccess | smtp.NotifyDelay, ORcpt: "rfc822;bob+old@example.org"},
		"carol@example.org": {Notify: smtp.NotifyNever},
	}
	if len(env.DSN) != len(want) {
		t.Errorf("DSN %+v, want %+v", env.DSN, want)
	}
	for r, w := range want {
		if env.RcptDSN(r) != w {
			t.Errorf("%s: %+v, want %+v", r, env.RcptDSN(r), w)
		}
	}
	if (env.RcptDSN("alice@example.org") != smtp.RcptDSN{}) {
		t.Errorf("alice: %+v, want none", env.RcptDSN("alice@example.org"))
	}

	// A transaction without DSN parameters has none in its envelope.
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	if env := f.spool.messages()[1].env; env.Ret != "" || env.EnvID != "" || env.DSN != nil {
		t.Errorf("no DSN parameters, got RET %q ENVID %q DSN %+v", env.Ret, env.EnvID, env.DSN)
	}

	c.script(
		step{"MAIL FROM:<a@example.net> RET=HEADERS", "501 5.5.4 Bad RET parameter syntax"},
		step{"MAIL FROM:<a@example.net> RET=FULL RET=HDRS", "501 5.5.4"},
		step{"MAIL FROM:<a@example.net> ENVID=a+0Db", "501 5.5.4 Bad ENVID parameter syntax"},
		step{"MAIL FROM:<a@example.net> ENVID=" + strings.Repeat("x", 101), "501 5.5.4 Bad ENVID"},
		step{"MAIL FROM:<a@example.net> RET", "501 5.5.4 Bad RET"},
		step{"MAIL FROM:<a@example.net> NOTIFY=SUCCESS", "555 5.5.4"}, // a RCPT parameter
		step{"MAIL FROM:<a@example.net> RET=FULL ENVID=" + strings.Repeat("x", 100), "250 2.1.0"},
		step{"RCPT TO:<bob@example.org> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"},
		step{"RCPT TO:<bob@example.org> NOTIFY=", "501 5.5.4"},
		step{"RCPT TO:<bob@example.org> ORCPT=bob@example.org", "501 5.5.4 Bad ORCPT parameter syntax"},
		step{"RCPT TO:<bob@example.org> ORCPT=rfc822;bob+0D+0AX:y@example.org", "501 5.5.4 Bad ORCPT"},
		step{"RCPT TO:<bob@example.org> RET=FULL", "555 5.5.4"}, // a MAIL parameter
		step{"RCPT TO:<bob@example.org> SIZE=10", "555 5.5.4"},
		// RFC 3461 §5: RCPT may be 500 characters longer than 512.
		step{"RCPT TO:<bob@example.org> NOTIFY=FAILURE ORCPT=rfc822;" + strings.Repeat("b", 440) + "@example.org", "250 2.1.5"},
		step{"RCPT TO:<carol@example.org> ORCPT=rfc822;" + strings.Repeat("b", 1100) + "@example.org", "500 5.5.2 Line too long"},
	)

	// After HELO there are no parameters.
	c2 := f.dial()
	c2.do("HELO client.example", "250 ")
	c2.do("MAIL FROM:<a@example.net> RET=FULL", "555 5.5.4")
	c2.do("MAIL FROM:<a@example.net>", "250 ")
	c2.do("RCPT TO:<bob@example.org> NOTIFY=NEVER", "555 5.5.4")
}

// TestDSNMailLineLength: RFC 3461 §5 lets MAIL be 110 characters longer
// than 512 with RET and ENVID, and no more.
func TestDSNMailLineLength(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	local := strings.Repeat("a", 64)
	from := "MAIL FROM:<" + local + "@" + strings.Repeat("d", 380) + ".example>"
	line := from + " RET=FULL ENVID=" + strings.Repeat("x", 100)
	if n := len(line) + 2; n <= 512 || n > 512+110 {
		t.Fatalf("line of %d octets", n)
	}
	c.do(line, "501 ") // the domain label is too long, but the line is read
	c.do(line+strings.Repeat(" ", 512+110-len(line)), "500 5.5.2 Line too long")
}
