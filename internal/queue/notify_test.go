package queue

import (
	"bufio"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// dsnEnv returns the envelope of a message from alice@local.test to
// rcpts, received now, with the DSN parameters given by notify (NOTIFY
// by recipient).
func dsnEnv(id string, notify map[string]smtp.Notify, rcpts ...string) *smtp.Envelope {
	env := spooltest.Env(id, rcpts...)
	env.From = "alice@local.test"
	env.ReceivedAt = time.Now()
	for r, n := range notify {
		if env.DSN == nil {
			env.DSN = map[string]smtp.RcptDSN{}
		}
		env.DSN[r] = smtp.RcptDSN{Notify: n}
	}
	return env
}

// toSender delivers the sender's (alice's) mail to sink and fails
// every other recipient with err.
func toSender(sink *localSink, err error) Deliverer {
	return DelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
		if strings.HasPrefix(rcpt, "alice") {
			return sink.Deliver(ctx, env, rcpt, msg)
		}
		return err
	})
}

// TestSuccessNotices checks NOTIFY=SUCCESS (RFC 3461 §4.1, §5.2): a
// local delivery is reported "delivered", a remote one to a next hop
// without DSN "relayed"; a next hop that took the parameters reports on
// its own, and a recipient without NOTIFY gets no success notice. The one
// notice carries Original-Envelope-Id and Original-Recipient (RFC 3464
// §2.2.1, §2.3.1) and only the header section.
func TestSuccessNotices(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sink := &localSink{}
	remote := BatchDelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
		var out []Outcome
		for _, r := range rcpts {
			out = append(out, Outcome{Rcpt: r, RemoteMTA: "mx." + strings.Split(r, "@")[1],
				Diagnostic: "smtp; 250 2.0.0 Ok: queued as ABC", NextHopDSN: r == "dan@dsn.test"})
		}
		return out
	})
	id := spooltest.ID()
	env := dsnEnv(id, map[string]smtp.Notify{
		"bob@local.test":  smtp.NotifySuccess,
		"carl@plain.test": smtp.NotifySuccess | smtp.NotifyFailure,
		"dan@dsn.test":    smtp.NotifySuccess,
	}, "bob@local.test", "carl@plain.test", "dan@dsn.test", "erin@local.test")
	env.EnvID, env.Ret = "QQ314159", "FULL"
	env.DSN["bob@local.test"] = smtp.RcptDSN{Notify: smtp.NotifySuccess, ORcpt: "rfc822;robert@old.test"}
	mustPut(t, s, env, spooltest.Data(id, 300))
	runFor(t, s, RunnerOptions{Local: sink, RemoteBatch: remote, IsLocal: isLocal, Policy: fastPolicy})
	testkit.WaitFor(t, "success notice", func() bool { return len(sink.get("alice@local.test")) == 1 })
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	notice := string(sink.get("alice@local.test")[0])
	for _, want := range []string{
		"Subject: Successful Mail Delivery Report\r\n",
		"Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; mail.example.net\r\n",
		"Original-Recipient: rfc822;robert@old.test\r\nFinal-Recipient: rfc822; bob@local.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n",
		"Final-Recipient: rfc822; carl@plain.test\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.plain.test\r\n" +
			"Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as ABC\r\n",
		"Content-Type: text/rfc822-headers\r\n", // RET=FULL is for failures
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice lacks %q:\n%s", want, notice)
		}
	}
	for _, not := range []string{"dan@dsn.test", "erin@local.test", "message/rfc822"} {
		if strings.Contains(notice, not) {
			t.Errorf("notice has %q:\n%s", not, notice)
		}
	}
	checkDSNParses(t, notice)
}

// TestNotifyNever checks that a recipient with NOTIFY=NEVER, or with a
// NOTIFY without FAILURE, fails without a bounce (RFC 3461 §4.1), while
// the one that asked for it gets one.
func TestNotifyNever(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sink := &localSink{}
	local := toSender(sink, Permanent(errors.New("no such user")))
	id := spooltest.ID()
	env := dsnEnv(id, map[string]smtp.Notify{
		"never@local.test":   smtp.NotifyNever,
		"success@local.test": smtp.NotifySuccess,
		"failure@local.test": smtp.NotifyFailure,
	}, "never@local.test", "success@local.test", "failure@local.test")
	mustPut(t, s, env, spooltest.Data(id, 300))
	runFor(t, s, RunnerOptions{Local: local, IsLocal: isLocal, Policy: fastPolicy})
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	got := sink.get("alice@local.test")
	if len(got) != 1 {
		t.Fatalf("%d notices, want 1", len(got))
	}
	if b := string(got[0]); !strings.Contains(b, "Final-Recipient: rfc822; failure@local.test\r\nAction: failed") ||
		strings.Contains(b, "never@") || strings.Contains(b, "success@") {
		t.Errorf("bounce:\n%s", b)
	}
}

// TestNotifyDelay checks that a delay warning goes only to recipients
// whose NOTIFY has DELAY, or who gave no NOTIFY (RFC 3461 §4.1).
func TestNotifyDelay(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sink := &localSink{}
	local := toSender(sink, errors.New("mailbox server down"))
	id := spooltest.ID()
	env := dsnEnv(id, map[string]smtp.Notify{
		"delay@local.test":   smtp.NotifyDelay,
		"failure@local.test": smtp.NotifyFailure | smtp.NotifySuccess,
	}, "delay@local.test", "failure@local.test", "default@local.test")
	env.ReceivedAt = time.Now().Add(-time.Hour)
	mustPut(t, s, env, spooltest.Data(id, 300))
	policy := RetryPolicy{First: time.Hour, Max: time.Hour, GiveUp: 24 * time.Hour, DelayWarning: time.Minute}
	runFor(t, s, RunnerOptions{Local: local, IsLocal: isLocal, Policy: policy})
	testkit.WaitFor(t, "delay warning", func() bool { return len(sink.get("alice@local.test")) == 1 })
	testkit.WaitFor(t, "all deferred", func() bool {
		for _, r := range env.Recipients {
			if stateOf(t, s, id, r).Status != spool.StatusDeferred {
				return false
			}
		}
		return true
	})
	b := string(sink.get("alice@local.test")[0])
	for _, want := range []string{"rfc822; delay@local.test\r\nAction: delayed", "rfc822; default@local.test\r\nAction: delayed"} {
		if !strings.Contains(b, want) {
			t.Errorf("warning lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "failure@") {
		t.Errorf("warning names failure@, whose NOTIFY has no DELAY:\n%s", b)
	}
}

// TestRetFull checks RET (RFC 3461 §4.3): a bounce for RET=FULL returns
// the whole message (message/rfc822), for RET=HDRS or none only its
// header section.
func TestRetFull(t *testing.T) {
	for _, ret := range []string{"FULL", "HDRS", ""} {
		t.Run("RET="+ret, func(t *testing.T) {
			s := openTest(t, t.TempDir(), 0)
			defer s.Close()
			sink := &localSink{}
			local := toSender(sink, Permanent(errors.New("no such user")))
			id := spooltest.ID()
			env := dsnEnv(id, nil, "bob@local.test")
			env.Ret = ret
			data := spooltest.Data(id, 300)
			mustPut(t, s, env, data)
			runFor(t, s, RunnerOptions{Local: local, IsLocal: isLocal, Policy: fastPolicy})
			testkit.WaitFor(t, "bounce", func() bool { return len(sink.get("alice@local.test")) == 1 })
			b := string(sink.get("alice@local.test")[0])
			body := string(data[smtp.HeaderEnd(data):])
			full := strings.Contains(b, "Content-Type: message/rfc822\r\n") && strings.Contains(b, body)
			hdrs := strings.Contains(b, "Content-Type: text/rfc822-headers\r\n") && !strings.Contains(b, body)
			if ret == "FULL" && !full || ret != "FULL" && !hdrs {
				t.Errorf("RET=%s: bounce returns the wrong part:\n%s", ret, b)
			}
			checkDSNParses(t, b)
		})
	}
}

// checkDSNParses checks that a notice is a multipart/report of three
// parts whose second, the delivery-status, is header sections.
func checkDSNParses(t *testing.T, notice string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(notice))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	n := 0
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		b, _ := io.ReadAll(part)
		if n == 2 {
			tp := textproto.NewReader(bufio.NewReader(strings.NewReader(string(b))))
			for {
				h, err := tp.ReadMIMEHeader()
				if len(h) == 0 && err != nil {
					break
				}
				if err != nil && err != io.EOF {
					t.Fatalf("delivery-status part: %v", err)
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("%d parts, want 3", n)
	}
}

// expandingLocal is a local deliverer with aliases: list@ expands to
// several addresses, one@ forwards to a single address with the
// sender's NOTIFY passed on, and everything else is written to sink.
type expandingLocal struct{ sink *localSink }

func (l expandingLocal) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	return l.DeliverOutcome(ctx, env, rcpt, msg).Err
}

func (l expandingLocal) DeliverOutcome(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) Outcome {
	switch rcpt {
	case "list@local.test":
		return Outcome{Expanded: true}
	case "one@local.test":
		return Outcome{NextHopDSN: true}
	}
	return Outcome{Err: l.sink.Deliver(ctx, env, rcpt, msg)}
}

// TestExpandedNotice checks RFC 3461 §6.2.7: an alias with NOTIFY=SUCCESS
// that expands to several addresses is reported "expanded" (RFC 3464
// §2.3.3), not "delivered"; a single-target alias that passes the NOTIFY
// on gets no notice here (the copy's delivery tells); a plain mailbox
// is "delivered".
func TestExpandedNotice(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sink := &localSink{}
	id := spooltest.ID()
	env := dsnEnv(id, map[string]smtp.Notify{
		"list@local.test": smtp.NotifySuccess | smtp.NotifyFailure,
		"one@local.test":  smtp.NotifySuccess,
		"bob@local.test":  smtp.NotifySuccess,
	}, "list@local.test", "one@local.test", "bob@local.test")
	mustPut(t, s, env, spooltest.Data(id, 300))
	runFor(t, s, RunnerOptions{Local: expandingLocal{sink}, IsLocal: isLocal, Policy: fastPolicy})
	testkit.WaitFor(t, "success notice", func() bool { return len(sink.get("alice@local.test")) == 1 })
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	notice := string(sink.get("alice@local.test")[0])
	for _, want := range []string{
		"Final-Recipient: rfc822; list@local.test\r\nAction: expanded\r\nStatus: 2.0.0\r\n",
		"Final-Recipient: rfc822; bob@local.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n",
		"<list@local.test>: delivered to the alias, which sent it on to several addresses",
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice lacks %q:\n%s", want, notice)
		}
	}
	if strings.Contains(notice, "one@local.test") {
		t.Errorf("notice reports the single-target alias:\n%s", notice)
	}
	checkDSNParses(t, notice)
}
