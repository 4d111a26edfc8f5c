package admin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// spoolSubmitter puts straight into the spool.
type spoolSubmitter struct{ s *spool.Spool }

func (p spoolSubmitter) Submit(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	return p.s.PutMessage(ctx, env, msg)
}

func TestSubmit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

	// Off until configured.
	if _, err := f.client.Submit(ctx, SubmitRequest{From: "a@x.test", Recipients: []string{"b@x.test"}, Data: []byte("\r\n")}); !errors.Is(err, ErrLocalOff) {
		t.Fatalf("submit without Local: %v, want ErrLocalOff", err)
	}
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(),
		Local: &LocalSubmit{Submitter: spoolSubmitter{f.spool}, Hostname: "mx.x.test", MaxMessageSize: 1000, Now: func() time.Time { return now }}}
	client := serve(t, srv, f.dir+"/local.sock")

	msg := "From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n"
	res, err := client.Submit(ctx, SubmitRequest{From: "a@x.test", Recipients: []string{"b@X.TEST", "b@x.test", "c@x.test"}, Data: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID
	env, data, err := f.spool.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if env.From != "a@x.test" || strings.Join(env.Recipients, ",") != "b@x.test,c@x.test" || env.Listener != "local" || env.Body != "7BIT" ||
		env.AuthUser != LocalSender(os.Getuid()) || env.Hold || res.Held {
		t.Errorf("envelope %+v", env)
	}
	want := "Received: by mx.x.test (Postern, from userid " + strconv.Itoa(os.Getuid()) + ") id " + id +
		";\r\n\tFri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + id + "@mx.x.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n" + msg
	if string(data) != want {
		t.Errorf("data\n%q\nwant\n%q", data, want)
	}

	// Message-ID and Date kept; a missing final CRLF added; 8-bit body; null sender.
	msg = "Message-ID: <x@y>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nd\xc3\xa9j\xc3\xa0"
	res, err = client.Submit(ctx, SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	id = res.ID
	env, data, _ = f.spool.Get(id)
	if env.From != "" || env.Body != "8BITMIME" || strings.Count(string(data), "Message-ID") != 1 || strings.Count(string(data), "Date:") != 1 || !strings.HasSuffix(string(data), msg+"\r\n") {
		t.Errorf("envelope %+v data %q", env, data)
	}

	// The DSN parameters of postern sendmail -N, -R and -V (RFC 3461):
	// NOTIFY for every recipient, RET and ENVID for the message.
	res, err = client.Submit(ctx, SubmitRequest{From: "a@x.test", Recipients: []string{"b@x.test", "c@x.test"}, Data: []byte(msg),
		Notify: "success,FAILURE", Ret: "hdrs", EnvID: "job 42+1"})
	if err != nil {
		t.Fatal(err)
	}
	env, _, _ = f.spool.Get(res.ID)
	want1 := smtp.RcptDSN{Notify: smtp.NotifySuccess | smtp.NotifyFailure}
	if env.Ret != "HDRS" || env.EnvID != "job 42+1" || len(env.DSN) != 2 || env.RcptDSN("b@x.test") != want1 || env.RcptDSN("c@x.test") != want1 {
		t.Errorf("DSN parameters: RET %q ENVID %q DSN %+v", env.Ret, env.EnvID, env.DSN)
	}

	for _, tc := range []struct {
		name string
		req  SubmitRequest
		want error
	}{
		{"bad NOTIFY", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("\r\n"), Notify: "never,success"}, ErrRefused},
		{"bad RET", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("\r\n"), Ret: "headers"}, ErrRefused},
		{"bad ENVID", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("\r\n"), EnvID: "a\r\nb"}, ErrRefused},
		{"long ENVID", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("\r\n"), EnvID: strings.Repeat("=", 34)}, ErrRefused},
		{"no rcpt", SubmitRequest{From: "a@x.test", Data: []byte("\r\n")}, ErrRefused},
		{"bad rcpt", SubmitRequest{Recipients: []string{"b@@x"}, Data: []byte("\r\n")}, ErrRefused},
		// KELVIN SIGN: no name, and not x.test's k (strings.ToLower made it one).
		{"rcpt not IDNA", SubmitRequest{Recipients: []string{"b@\u212A.test"}, Data: []byte("\r\n")}, ErrRefused},
		{"bad from", SubmitRequest{From: "a b", Recipients: []string{"b@x.test"}, Data: []byte("\r\n")}, ErrRefused},
		{"bare LF", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("a: b\n\nc\r\n")}, ErrRefused},
		{"bare CR", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("a: b\r\n\r\nc\rd\r\n")}, ErrRefused},
		{"too big", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte(strings.Repeat("x", 998) + "\r\n\r\n")}, ErrRefused},
	} {
		if _, err := client.Submit(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// No server.
	c := &Client{SocketPath: f.dir + "/none.sock"}
	if _, err := c.Submit(ctx, SubmitRequest{Recipients: []string{"b@x.test"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no server: %v", err)
	}
}

// TestLocalSender: local submissions count against the send limits
// under the caller's Unix user, which the caller cannot choose (unlike
// the envelope sender).
func TestLocalSender(t *testing.T) {
	for uid, want := range map[int]string{0: "local:root", 65534: "local:nobody", -1: "local:unknown"} {
		if got := LocalSender(uid); got != want {
			t.Errorf("LocalSender(%d) = %q, want %q", uid, got, want)
		}
	}
	// A uid without a name in the user database: the number.
	if got := LocalSender(2147480000); got != "local:2147480000" {
		t.Errorf("LocalSender(unnamed) = %q", got)
	}
}

// TestSubmitSendLimits: local submission is no side door around the
// send limits. Over a limit the message is refused with ErrSendLimit
// (nothing queued, counted for nothing), or held for review when the
// policy is to hold; the caller counts under its Unix user whatever
// envelope sender it gives.
func TestSubmitSendLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The submissions' clock, near the runner's (the wall clock): a
	// fixed date more than 5 days past would have the runner expire the
	// messages and queue DSNs while the test counts the queue.
	now := time.Now().Truncate(time.Minute)
	me := LocalSender(os.Getuid())
	start := func(lo admission.LimiterOptions) *Client {
		t.Helper()
		lo.Logger = quiet()
		srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(),
			Local: &LocalSubmit{Submitter: spoolSubmitter{f.spool}, Hostname: "mx.x.test", Now: func() time.Time { return now },
				Limiter: admission.NewLimiter(admission.NewMemoryStore(), lo)}}
		return serve(t, srv, filepath.Join(t.TempDir(), "local.sock"))
	}
	req := func(from string, rcpts ...string) SubmitRequest {
		return SubmitRequest{From: from, Recipients: rcpts, Data: []byte("Subject: s\r\n\r\nb\r\n")}
	}

	// Two messages an hour: the third is refused, whatever its sender.
	c := start(admission.LimiterOptions{Default: admission.SendLimits{MessagesPerHour: 2, RecipientsPerHour: 5}})
	for _, from := range []string{"a@x.test", "b@x.test"} {
		if _, err := c.Submit(ctx, req(from, "r@x.test")); err != nil {
			t.Fatalf("within the limit: %v", err)
		}
	}
	before := len(f.spool.List())
	_, err := c.Submit(ctx, req("other@x.test", "r@x.test"))
	if !errors.Is(err, ErrSendLimit) || errors.Is(err, ErrRefused) ||
		!strings.Contains(err.Error(), "Send limit of 2 messages per hour reached, try again later ("+me+")") {
		t.Errorf("third message: %v, want ErrSendLimit naming the limit and %s", err, me)
	}
	if n := len(f.spool.List()); n != before {
		t.Errorf("refused message queued: %d messages, want %d", n, before)
	}
	// An hour later the window is new.
	now = now.Add(time.Hour)
	if _, err := c.Submit(ctx, req("a@x.test", "r@x.test")); err != nil {
		t.Errorf("an hour later: %v", err)
	}
	// Recipients per hour: 1 used, 5 asked, limit 5.
	if _, err := c.Submit(ctx, req("a@x.test", "r1@x.test", "r2@x.test", "r3@x.test", "r4@x.test", "r5@x.test")); !errors.Is(err, ErrSendLimit) ||
		!strings.Contains(err.Error(), "Send limit of 5 recipients per hour") {
		t.Errorf("recipients: %v, want ErrSendLimit for recipients", err)
	}

	// Hold: the message over the limit is taken, held, and says so.
	c = start(admission.LimiterOptions{Default: admission.SendLimits{MessagesPerHour: 100},
		Users: map[string]admission.SendLimits{me: {MessagesPerHour: 1, Hold: true}}})
	if res, err := c.Submit(ctx, req("a@x.test", "r@x.test")); err != nil || res.Held {
		t.Fatalf("first: %+v, %v", res, err)
	}
	res, err := c.Submit(ctx, req("a@x.test", "r@x.test"))
	if err != nil || !res.Held || res.HoldReason != "send limit: messages per hour" {
		t.Fatalf("over the limit with hold: %+v, %v", res, err)
	}
	env, _, err := f.spool.Get(res.ID)
	if err != nil || !env.Hold || env.HoldReason != "send limit: messages per hour" || env.AuthUser != me {
		t.Errorf("held envelope: %+v, %v", env, err)
	}
	if m, err := f.spool.Lookup(res.ID); err != nil || !m.Held {
		t.Errorf("held message in the queue: %+v, %v", m, err)
	}
}

// TestSubmitBare: the recipients the caller qualified from bare names
// go where RouteBare says; the others stay as they are.
func TestSubmitBare(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	route := func(ctx context.Context, addr string) (string, error) {
		if addr == "fail@x.test" {
			return "", errors.New("directory down")
		}
		if addr == "alice@x.test" {
			return addr, nil
		}
		return "postmaster@x.test", nil
	}
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(),
		Local: &LocalSubmit{Submitter: spoolSubmitter{f.spool}, Hostname: "mx.x.test", RouteBare: route}}
	client := serve(t, srv, f.dir+"/local.sock")
	res, err := client.Submit(ctx, SubmitRequest{
		Recipients: []string{"root@x.test", "alice@x.test", "nobody@x.test", "postmaster@x.test", "root@y.test"},
		Bare:       []string{"root@X.test", "alice@x.test", "nobody@x.test"},
		Data:       []byte("\r\nbody\r\n"),
		Notify:     "DELAY",
	})
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := f.spool.Get(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(env.Recipients, ","); got != "postmaster@x.test,alice@x.test,root@y.test" {
		t.Errorf("recipients %s", got)
	}
	// NOTIFY follows the recipients where they were routed.
	for _, r := range env.Recipients {
		if env.RcptDSN(r).Notify != smtp.NotifyDelay {
			t.Errorf("%s: DSN %+v, want NOTIFY=DELAY", r, env.RcptDSN(r))
		}
	}
	if len(env.DSN) != len(env.Recipients) {
		t.Errorf("DSN for %d addresses, %d recipients: %+v", len(env.DSN), len(env.Recipients), env.DSN)
	}
	if _, err := client.Submit(ctx, SubmitRequest{Recipients: []string{"fail@x.test"}, Bare: []string{"fail@x.test"}, Data: []byte("\r\n")}); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("route failure: %v, want a temporary error", err)
	}
}
