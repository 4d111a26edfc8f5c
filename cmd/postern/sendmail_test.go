package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/spool"
)

func TestParseSendmailArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want sendmailOpts
	}{
		{[]string{"-t", "-i"}, sendmailOpts{extractRcpts: true, ignoreDots: true}},
		{[]string{"-oi", "-f", "a@x.test", "b@x.test"}, sendmailOpts{ignoreDots: true, from: "a@x.test", fromSet: true, rcpts: []string{"b@x.test"}}},
		{[]string{"-fa@x.test", "-FAlice Example", "b@x.test", "c@x.test"}, sendmailOpts{from: "a@x.test", fromSet: true, fullName: "Alice Example", rcpts: []string{"b@x.test", "c@x.test"}}},
		{[]string{"-F", "Alice", "-r", "<a@x.test>", "b@x.test"}, sendmailOpts{from: "a@x.test", fromSet: true, fullName: "Alice", rcpts: []string{"b@x.test"}}},
		{[]string{"-f", "<>", "b@x.test"}, sendmailOpts{fromSet: true, rcpts: []string{"b@x.test"}}},
		{[]string{"-bm", "-odi", "-oem", "-o", "X", "-v", "-N", "never", "-B", "8BITMIME", "b@x.test"}, sendmailOpts{rcpts: []string{"b@x.test"}}},
		{[]string{"-C", "/etc/p.toml", "--", "-b@x.test"}, sendmailOpts{config: "/etc/p.toml", rcpts: []string{"-b@x.test"}}},
		{[]string{"--config=/etc/p.toml", "b@x.test"}, sendmailOpts{config: "/etc/p.toml", rcpts: []string{"b@x.test"}}},
		{[]string{"--data", "d", "b@x.test"}, sendmailOpts{data: "d", rcpts: []string{"b@x.test"}}},
		{[]string{"-bp"}, sendmailOpts{mode: modePrint}},
		{[]string{"-bs"}, sendmailOpts{mode: modeSMTP}},
		{[]string{"-q"}, sendmailOpts{mode: modeFlush}},
		{[]string{"-qRexample.com"}, sendmailOpts{mode: modeFlush, flushFilter: "Rexample.com"}},
		{[]string{"-q30m"}, sendmailOpts{mode: modeFlush, flushFilter: "interval"}},
		// Debian's cron, with its double space: "%s -FCronDaemon -i -B8BITMIME -oem  %s".
		{strings.Fields("-FCronDaemon -i -B8BITMIME -oem  root"), sendmailOpts{fullName: "CronDaemon", ignoreDots: true, rcpts: []string{"root"}}},
	} {
		got, err := parseSendmailArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.args, *got, tc.want)
		}
	}
	for _, bad := range [][]string{{"-bx"}, {"-qR"}, {"-qX"}, {"-x"}, {"-f"}, {"-F"}, {"--config"}, {"--data", "d", "--config", "c"}} {
		_, err := parseSendmailArgs(bad)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}

func TestReadMessage(t *testing.T) {
	for _, tc := range []struct {
		in         string
		ignoreDots bool
		want       string
	}{
		{"Subject: a\nb\n", false, "Subject: a\r\nb\r\n"},
		{"Subject: a\r\n\r\nb", false, "Subject: a\r\n\r\nb\r\n"},
		{"a\rb\r\nc\n", false, "a\r\nb\r\nc\r\n"},
		{"a\n.\nb\n", false, "a\r\n"},
		{"a\n.\nb\n", true, "a\r\n.\r\nb\r\n"},
		{"a\n..\nb\n", false, "a\r\n..\r\nb\r\n"},
		{"", false, ""},
	} {
		got, err := readMessage(strings.NewReader(tc.in), tc.ignoreDots, 1000)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q (-i %v): %q, %v; want %q", tc.in, tc.ignoreDots, got, err, tc.want)
		}
	}
	if _, err := readMessage(strings.NewReader(strings.Repeat("x", 11)), false, 10); err == nil {
		t.Error("11 bytes with a limit of 10: no error")
	}
}

func TestPrepareMessage(t *testing.T) {
	msg := "To: Bob <b@x.test>, c@x.test\r\nCc: undisclosed-recipients:;\r\nBcc: d@x.test,\r\n e@x.test\r\nSubject: s\r\n\r\nBcc: body stays\r\n"
	out, rcpts, _, err := prepareMessage([]byte(msg), &sendmailOpts{extractRcpts: true, fullName: "Cron Daemon", rcpts: []string{"a@x.test"}}, "root@x.test", "x.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a@x.test b@x.test c@x.test d@x.test e@x.test"; strings.Join(rcpts, " ") != want {
		t.Errorf("rcpts %q, want %q", rcpts, want)
	}
	want := "From: \"Cron Daemon\" <root@x.test>\r\nTo: Bob <b@x.test>, c@x.test\r\nCc: undisclosed-recipients:;\r\nSubject: s\r\n\r\nBcc: body stays\r\n"
	if string(out) != want {
		t.Errorf("message\n%q\nwant\n%q", out, want)
	}

	// Without -t the header's recipients are not used and Bcc stays; a
	// From field is kept; a non-ASCII name is encoded.
	out, rcpts, _, _ = prepareMessage([]byte("From: me@x.test\r\nBcc: d@x.test\r\n\r\nb\r\n"), &sendmailOpts{}, "root@x.test", "x.test")
	if len(rcpts) != 0 || string(out) != "From: me@x.test\r\nBcc: d@x.test\r\n\r\nb\r\n" {
		t.Errorf("without -t: %q %q", rcpts, out)
	}
	out, _, _, _ = prepareMessage([]byte("Subject: s\r\n\r\nb\r\n"), &sendmailOpts{fullName: "Zoë"}, "z@x.test", "x.test")
	if !strings.HasPrefix(string(out), "From: =?utf-8?q?Zo=C3=AB?= <z@x.test>\r\nSubject: s\r\n") {
		t.Errorf("non-ASCII name: %q", out)
	}
	// No header section: the input is the body.
	out, _, _, _ = prepareMessage([]byte("just text\r\n"), &sendmailOpts{}, "z@x.test", "x.test")
	if string(out) != "From: z@x.test\r\n\r\njust text\r\n" {
		t.Errorf("no header: %q", out)
	}
	// A bad To with -t is a data error.
	if _, _, _, err := prepareMessage([]byte("To: <<<\r\n\r\n"), &sendmailOpts{extractRcpts: true}, "", "x.test"); err == nil {
		t.Error("bad To: no error")
	}
	// Bare names: qualified in the address fields and among the
	// recipients, and reported as bare (they go to the postmaster when
	// no user or alias has them).
	out, rcpts, bare, err := prepareMessage([]byte("From: root (Cron Daemon)\r\nTo: root, alice@x.test\r\nCc: Backup <backup>\r\n\r\nb\r\n"),
		&sendmailOpts{extractRcpts: true, rcpts: []string{"www-data", "not an address"}}, "root@x.test", "x.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: root@x.test (Cron Daemon)\r\nTo: root@x.test, alice@x.test\r\nCc: Backup <backup@x.test>\r\n\r\nb\r\n"; string(out) != want {
		t.Errorf("bare names in the header: %q, want %q", out, want)
	}
	if got := strings.Join(rcpts, " "); got != "www-data@x.test not an address root@x.test alice@x.test backup@x.test" {
		t.Errorf("rcpts %q", got)
	}
	if got := strings.Join(bare, " "); got != "www-data@x.test root@x.test backup@x.test" {
		t.Errorf("bare %q", got)
	}
}

func TestSendmailExitCodes(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	if code := cmdSendmail([]string{"-bx"}, strings.NewReader(""), &stderr, &stderr); code != exUsage {
		t.Errorf("-bx: exit %d, want %d", code, exUsage)
	}
	for _, mode := range []string{"-bp", "-q"} {
		stderr.Reset()
		if code := cmdSendmail([]string{"--data", dir, mode}, strings.NewReader(""), &stderr, &stderr); code != exUnavailable || !strings.Contains(stderr.String(), "not running") {
			t.Errorf("%s without a server: exit %d, %q; want %d", mode, code, stderr.String(), exUnavailable)
		}
	}
	if code := cmdSendmail([]string{"--data", dir, "-t"}, strings.NewReader("Subject: x\n\nb\n"), &stderr, &stderr); code != exDataErr {
		t.Errorf("-t without recipients: exit %d, want %d", code, exDataErr)
	}
	stderr.Reset()
	if code := cmdSendmail([]string{"--data", dir, "b@localhost"}, strings.NewReader("Subject: x\n\nb\n"), &stderr, &stderr); code != exUnavailable {
		t.Errorf("no server: exit %d, want %d (%s)", code, exUnavailable, stderr.String())
	}
	if !strings.Contains(stderr.String(), "not running") {
		t.Errorf("no server: %q", stderr.String())
	}
}

// TestSendmailSendLimits: sendmail submissions count against
// [send_limits] under the caller's Unix user ("local:root" here): over a
// limit sendmail exits EX_TEMPFAIL and says why; with over_limit =
// "hold" for that name the message is queued, held, and sendmail says so.
func TestSendmailSendLimits(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Dev(dir)
	cfg.SendLimits.MessagesPerHour = 1
	me := admin.LocalSender(os.Getuid())
	spool, err := spool.Open(spool.Options{Dir: cfg.SpoolDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	serve := func(cfg *config.Config) *admin.Server {
		t.Helper()
		adm, err := newAdmission(cfg, config.Secrets{}, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := admin.Listen(cfg.AdminSocket())
		if err != nil {
			t.Fatal(err)
		}
		srv := &admin.Server{Spool: spool, Runner: newFakeQueue(), Logger: slog.New(slog.DiscardHandler),
			Local: localSubmit(cfg, spool, nil, adm.limiter, nil)}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
		return srv
	}
	srv := serve(cfg)
	send := func() (int, string) {
		var stderr strings.Builder
		code := cmdSendmail([]string{"--data", dir, "-f", "cron@localhost", "b@localhost"}, strings.NewReader("Subject: x\n\nb\n"), &stderr, &stderr)
		return code, stderr.String()
	}
	if code, out := send(); code != exOK || out != "" {
		t.Fatalf("within the limit: exit %d, %q", code, out)
	}
	code, out := send()
	if code != exTempFail || !strings.Contains(out, "Send limit of 1 messages per hour reached, try again later ("+me+"); the message was not queued") {
		t.Errorf("over the limit: exit %d, %q; want %d naming the limit and %s", code, out, exTempFail, me)
	}
	if n := len(spool.List()); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}

	// over_limit = "hold" for this caller: queued, held, and said.
	cfg.SendLimits.Users = map[string]config.UserSendLimits{me: {MessagesPerHour: 1, OverLimit: config.OverLimitHold}}
	srv.Shutdown(context.Background())
	serve(cfg)
	send()
	code, out = send()
	if code != exOK || !strings.Contains(out, "queued but held for review (send limit: messages per hour)") {
		t.Errorf("over the limit with hold: exit %d, %q", code, out)
	}
	held := 0
	for _, it := range spool.List() {
		if it.Held {
			held++
		}
	}
	if held != 1 {
		t.Errorf("%d held messages, want 1", held)
	}
}

// FuzzSendmailMessage: whatever the input, the message handed to the
// server has only CRLF line ends (the admin socket refuses any other),
// and -t never panics.
func FuzzSendmailMessage(f *testing.F) {
	f.Add([]byte("To: a@x.test\nBcc: b@x.test,\n c@x.test\n\nbody\n.\n"), false)
	f.Add([]byte("no header\r\rx\r\n"), true)
	f.Add([]byte("Subject: \xff\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, ignoreDots bool) {
		msg, err := readMessage(strings.NewReader(string(in)), ignoreDots, 1<<20)
		if err != nil {
			return
		}
		out, _, _, err := prepareMessage(msg, &sendmailOpts{extractRcpts: true, fullName: "N"}, "s@x.test", "x.test")
		if err != nil {
			return
		}
		for i, c := range out {
			if (c == '\n' && (i == 0 || out[i-1] != '\r')) || (c == '\r' && (i+1 == len(out) || out[i+1] != '\n')) {
				t.Fatalf("bare CR or LF at %d in %q (from %q)", i, out, in)
			}
		}
	})
}
