package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"postern/internal/admin"
	"postern/internal/admission"
	"postern/internal/config"
	"postern/internal/sendmail"
	"postern/internal/spool"
)

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
		// [send_limits] of cfg, as serve converts them (internal/server).
		lo := admission.LimiterOptions{Default: admission.SendLimits{MessagesPerHour: cfg.SendLimits.MessagesPerHour}, Logger: slog.New(slog.DiscardHandler)}
		if u, ok := cfg.SendLimits.Users[me]; ok {
			lo.Users = map[string]admission.SendLimits{me: {MessagesPerHour: u.MessagesPerHour, Hold: u.OverLimit == config.OverLimitHold}}
		}
		l, err := admin.Listen(cfg.AdminSocket())
		if err != nil {
			t.Fatal(err)
		}
		srv := &admin.Server{Spool: spool, Runner: newFakeQueue(), Logger: slog.New(slog.DiscardHandler),
			Local: &admin.LocalSubmit{Submitter: sendmail.Local{Spool: spool}, Limiter: admission.NewLimiter(admission.NewMemoryStore(), lo),
				Hostname: cfg.Hostname, MaxMessageSize: cfg.Limits.MaxMessageSize, MaxRecipients: cfg.Limits.MaxRecipients}}
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
