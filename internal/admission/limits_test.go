package admission_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"postern/internal/admission"
)

func newLimiter(s admission.Store, rec *logRecorder) *admission.Limiter {
	return admission.NewLimiter(s, admission.LimiterOptions{
		Default: admission.SendLimits{MessagesPerHour: 3, RecipientsPerHour: 10, Sessions: 2},
		Users: map[string]admission.SendLimits{
			"Big@example.com": {MessagesPerHour: 100},
		},
		Logger: slog.New(rec),
	})
}

func TestLimiterMessages(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		rec := &logRecorder{}
		l := newLimiter(newStore(t), rec)
		ctx := context.Background()
		now := e0
		for i := 1; i <= 3; i++ { // at the limit
			if e := l.AllowMessage(ctx, "alice@example.com", 1, now); e != nil {
				t.Fatalf("message %d refused: %v", i, e)
			}
		}
		e := l.AllowMessage(ctx, "alice@example.com", 1, now) // just past it
		if e == nil || e.Code != 451 || e.Enhanced != "4.7.1" || !strings.Contains(e.Message, "limit of 3 messages per hour") {
			t.Fatalf("4th message: %v; want 451 4.7.1 naming the limit of 3 messages per hour", e)
		}
		if rec.count("send limit reached") != 1 {
			t.Errorf("send limit events = %d, want 1", rec.count("send limit reached"))
		}
		// Other users have their own counts; the override has its own limit.
		if e := l.AllowMessage(ctx, "bob@example.com", 1, now); e != nil {
			t.Errorf("bob refused: %v", e)
		}
		for i := 1; i <= 10; i++ {
			if e := l.AllowMessage(ctx, "big@EXAMPLE.com", 50, now); e != nil {
				t.Fatalf("override user refused at message %d: %v", i, e)
			}
		}
		// The hour ends.
		if e := l.AllowMessage(ctx, "alice@example.com", 1, now.Add(time.Hour)); e != nil {
			t.Errorf("refused an hour later: %v", e)
		}
	})
}

func TestLimiterRecipients(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		l := newLimiter(newStore(t), &logRecorder{})
		ctx := context.Background()
		now := e0
		if e := l.AllowMessage(ctx, "carol", 7, now); e != nil {
			t.Fatal(e)
		}
		// 7 + 4 > 10: refused, and nothing counted (neither the message
		// nor its recipients).
		e := l.AllowMessage(ctx, "carol", 4, now)
		if e == nil || e.Code != 451 || !strings.Contains(e.Message, "limit of 10 recipients per hour") {
			t.Fatalf("past the recipient limit: %v", e)
		}
		// 7 + 3 = 10: at the limit, allowed (and the second message of 3).
		if e := l.AllowMessage(ctx, "carol", 3, now); e != nil {
			t.Fatalf("at the recipient limit: %v", e)
		}
		if e := l.AllowMessage(ctx, "carol", 1, now); e == nil {
			t.Fatal("one past the recipient limit allowed")
		}
		// A message refused for its recipients is not counted as a
		// message either.
		l2 := admission.NewLimiter(newStore(t), admission.LimiterOptions{
			Default: admission.SendLimits{MessagesPerHour: 2, RecipientsPerHour: 2}, Logger: slog.New(&logRecorder{})})
		l2.AllowMessage(ctx, "dan", 1, now)
		if e := l2.AllowMessage(ctx, "dan", 5, now); e == nil {
			t.Fatal("5 recipients allowed past a limit of 2")
		}
		if e := l2.AllowMessage(ctx, "dan", 1, now); e != nil {
			t.Fatalf("a refused message was counted: %v", e)
		}
	})
}

func TestLimiterSessions(t *testing.T) {
	t.Parallel()
	l := newLimiter(admission.NewMemoryStore(), &logRecorder{})
	ctx := context.Background()
	r1, e := l.BeginSession(ctx, "alice")
	if e != nil {
		t.Fatal(e)
	}
	r2, e := l.BeginSession(ctx, "ALICE")
	if e != nil {
		t.Fatal(e)
	}
	if _, e := l.BeginSession(ctx, "alice"); e == nil || e.Code != 451 || !strings.Contains(e.Message, "limit of 2 concurrent sessions") {
		t.Fatalf("3rd session: %v", e)
	}
	r1()
	r1()
	if n := l.Sessions("alice"); n != 1 {
		t.Fatalf("sessions after one release (twice) = %d, want 1", n)
	}
	r3, e := l.BeginSession(ctx, "alice")
	if e != nil {
		t.Fatalf("after a release: %v", e)
	}
	// The override has no session limit (zero).
	for i := 0; i < 20; i++ {
		if _, e := l.BeginSession(ctx, "big@example.com"); e != nil {
			t.Fatalf("override session %d: %v", i, e)
		}
	}
	r2()
	r3()
	if n := l.Sessions("alice"); n != 0 {
		t.Errorf("sessions = %d after all released", n)
	}
}

// Over the hourly limits, a user whose policy is to hold gets a verdict
// that says so, with the limit named; others are refused as before. A
// held message does not count against the limits.
func TestLimiterHold(t *testing.T) {
	t.Parallel()
	l := admission.NewLimiter(admission.NewMemoryStore(), admission.LimiterOptions{
		Default: admission.SendLimits{MessagesPerHour: 1, RecipientsPerHour: 5},
		Users: map[string]admission.SendLimits{
			"Holder": {MessagesPerHour: 1, RecipientsPerHour: 5, Hold: true},
		},
		Logger: slog.New(&logRecorder{}),
	})
	ctx := context.Background()
	now := e0
	for _, u := range []string{"holder", "refused"} {
		if v := l.CheckMessage(ctx, u, 1, now); v.Over != nil || v.Hold || v.Limit != "" {
			t.Fatalf("%s: first message: %+v", u, v)
		}
	}
	v := l.CheckMessage(ctx, "holder", 1, now)
	if v.Over == nil || !v.Hold || v.Limit != "messages per hour" {
		t.Fatalf("holder over the message limit: %+v; want Hold, limit messages per hour", v)
	}
	v = l.CheckMessage(ctx, "refused", 1, now)
	if v.Over == nil || v.Over.Code != 451 || v.Over.Enhanced != "4.7.1" || v.Hold || v.Limit != "messages per hour" {
		t.Fatalf("refusing user over the message limit: %+v; want 451 4.7.1, no hold", v)
	}
	if e := l.AllowMessage(ctx, "holder", 1, now); e == nil || e.Code != 451 {
		t.Errorf("AllowMessage over the limit: %v; want 451 whatever the policy", e)
	}
	// Held messages were not counted: an hour later the user has a full
	// hour's allowance again, and the recipients limit is named too.
	later := now.Add(time.Hour)
	if v := l.CheckMessage(ctx, "holder", 5, later); v.Over != nil {
		t.Fatalf("an hour later: %+v", v)
	}
	if v := l.CheckMessage(ctx, "holder", 1, later.Add(time.Hour)); v.Over != nil {
		t.Fatalf("two hours later: %+v", v)
	}
	l2 := admission.NewLimiter(admission.NewMemoryStore(), admission.LimiterOptions{
		Default: admission.SendLimits{RecipientsPerHour: 2, Hold: true}, Logger: slog.New(&logRecorder{})})
	if v := l2.CheckMessage(ctx, "x", 3, now); !v.Hold || v.Limit != "recipients per hour" {
		t.Errorf("over the recipients limit: %+v", v)
	}
	if v := l2.CheckMessage(ctx, "x", 2, now); v.Over != nil {
		t.Errorf("the held message was counted: %+v", v)
	}
}

// A username with a KELVIN SIGN (U+212A) in its domain counts on its
// own, not toward the limits of the user with a "k" (addrkey, issue 12
// §8); ASCII case is still folded, and the per-user overrides match the
// same way.
func TestLimiterKelvinSignIsAnotherUser(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		l := newLimiter(newStore(t), &logRecorder{})
		ctx := context.Background()
		for i := 1; i <= 3; i++ {
			if e := l.AllowMessage(ctx, "kate@wor\u212A.test", 1, e0); e != nil {
				t.Fatalf("message %d refused: %v", i, e)
			}
		}
		if e := l.AllowMessage(ctx, "kate@work.test", 1, e0); e != nil {
			t.Errorf("kate@work.test refused after another user's 3 messages: %v", e)
		}
		if e := l.AllowMessage(ctx, "KATE@WOR\u212A.test", 1, e0); e == nil {
			t.Error("the 4th message of the same user (ASCII case aside) allowed")
		}
		if got := l.Limits("big@example.com").MessagesPerHour; got != 100 {
			t.Errorf("override of Big@example.com: %d messages per hour, want 100", got)
		}
		if got := l.Limits("big@example.co\u212A").MessagesPerHour; got != 3 {
			t.Errorf("big@example.co\\u212A took the override of Big@example.com: %d messages per hour, want the default 3", got)
		}
		release, err := l.BeginSession(ctx, "kate@wor\u212A.test")
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if n := l.Sessions("kate@work.test"); n != 0 {
			t.Errorf("kate@work.test has %d sessions, want 0", n)
		}
	})
}
