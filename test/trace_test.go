package test

import (
	"encoding/base64"
	"net/smtp"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProtocolTrace runs the real binary with a JSON log and an empty
// [log] trace list, then lists one client address and one user and
// runs `postern reload`: the listed client's dialogue and the listed
// user's are then in the log, with AUTH's payload and the message data
// left out; another client's is not, before or after. Login failures
// say why in the log (unknown user, bad password) and the client hears
// the same 535 for both.
func TestProtocolTrace(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	s := testConfig(t, dir, "\n[log]\nformat = \"json\"\ntrace = []\n")
	s.start()
	const pass = "trace-Pa55word"
	s.addUser("tess@example.test", pass)
	s.addUser("ulla@example.test", pass)

	// session sends one message as user from src; it returns the
	// session id the server logged for src's connection.
	session := func(src, user, marker string) string {
		t.Helper()
		c, err := smtpsFrom(src, s.subs)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(smtp.PlainAuth("", user, pass, "localhost")); err != nil {
			t.Fatal(err)
		}
		if err := send(c, user, "someone@example.test", "From: "+user+"\r\nSubject: "+marker+"\r\n\r\n"+marker+" body\r\n"); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		s.waitMaildir("someone@example.test", marker)
		m := regexp.MustCompile(`"msg":"session start","listener":"submissions","session":"(\w{20})","remote":"`+
			regexp.QuoteMeta(src)+`:\d+"`).FindAllStringSubmatch(s.stderr.String(), -1)
		if m == nil {
			t.Fatalf("no session from %s in the log", src)
		}
		return m[len(m)-1][1]
	}
	traceOf := func(id string) []string {
		var out []string
		for _, l := range strings.Split(s.stderr.String(), "\n") {
			if strings.Contains(l, `"session":"`+id+`"`) && strings.Contains(l, `"msg":"smtp trace"`) {
				out = append(out, l)
			}
		}
		return out
	}
	s.addUser("someone@example.test", "x-"+pass)

	before := session("127.0.0.91", "tess@example.test", "trace-marker-1")
	if tr := traceOf(before); len(tr) != 0 {
		t.Errorf("traced with an empty list:\n%s", strings.Join(tr, "\n"))
	}

	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "trace = []", `trace = ["127.0.0.91", "ULLA@example.test"]`, 1))
	if err := os.WriteFile(s.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.run("", "reload"); err != nil || !strings.Contains(out, "Reloaded") {
		t.Fatalf("reload: %v\n%s", err, out)
	}

	byAddr := session("127.0.0.91", "tess@example.test", "trace-marker-2")
	byUser := session("127.0.0.93", "ulla@example.test", "trace-marker-3")
	other := session("127.0.0.92", "tess@example.test", "trace-marker-4")
	secret := base64.StdEncoding.EncodeToString([]byte("\x00tess@example.test\x00" + pass))
	for name, id := range map[string]string{"address": byAddr, "user": byUser} {
		tr := strings.Join(traceOf(id), "\n")
		for _, want := range []string{
			`"from":"server","line":"220 localhost ESMTP Postern"`,
			`"from":"client","line":"EHLO `,
			`"from":"client","line":"AUTH PLAIN [initial response, `,
			`"from":"server","line":"235 2.7.0 Authentication successful"`,
			`"from":"client","line":"MAIL FROM:<`,
			`"from":"client","line":"[message data, not logged]"`,
			`"from":"server","line":"250 2.0.0 OK queued as `,
			`"from":"client","line":"QUIT"`,
		} {
			if !strings.Contains(tr, want) {
				t.Errorf("the trace by %s lacks %s:\n%s", name, want, tr)
			}
		}
	}
	if tr := traceOf(other); len(tr) != 0 {
		t.Errorf("an unlisted client was traced:\n%s", strings.Join(tr, "\n"))
	}
	log := s.stderr.String()
	for _, no := range []string{pass, secret, "trace-marker-2 body", "trace-marker-3 body"} {
		if strings.Contains(log, no) {
			t.Errorf("the log holds %q", no)
		}
	}

	// Why a login failed is in the log, not in the reply.
	var replies []string
	for _, who := range []struct{ user, pass string }{{"nobody@example.test", pass}, {"tess@example.test", "wrong-" + pass}} {
		c, err := smtpsFrom("127.0.0.94", s.subs)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Auth(smtp.PlainAuth("", who.user, who.pass, "localhost"))
		if err == nil {
			t.Fatalf("%s logged in", who.user)
		}
		replies = append(replies, err.Error())
		c.Close()
	}
	if replies[0] != replies[1] {
		t.Errorf("the replies differ: %q", replies)
	}
	// The 535 may reach the client a moment before the line is logged.
	waitLogFor(t, s, `"reason":"bad password"`, 10*time.Second)
	log = s.stderr.String()
	for _, want := range []string{
		`"mechanism":"PLAIN","user":"nobody@example.test","remote":"127.0.0.94:`,
		`"outcome":"failure","reason":"unknown user"`,
		`"mechanism":"PLAIN","user":"tess@example.test","remote":"127.0.0.94:`,
		`"outcome":"failure","reason":"bad password"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	if strings.Contains(log, "wrong-"+pass) {
		t.Errorf("the log holds the wrong password")
	}
}
