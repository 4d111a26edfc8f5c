package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/admissiontest"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// TestEventsFromObservers runs a queue runner and an abuse engine whose
// logs go nowhere, with Events as their observer: what the status page
// shows comes from the observers, whatever the log says (or if it says
// nothing at all).
func TestEventsFromObservers(t *testing.T) {
	t.Parallel()
	ev := NewEvents(10)
	silent := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	spool, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), Logger: silent})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	runner := queue.NewRunner(spool, queue.RunnerOptions{
		Local: queue.DelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpt string, _ *smtp.Message) error {
			if strings.HasPrefix(rcpt, "bad") {
				return queue.Permanent(errors.New("no such mailbox"))
			}
			return nil
		}),
		IsLocal: func(string) bool { return true },
		Logger:  silent,
		Observe: ev.Delivery,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	env := &smtp.Envelope{ID: "M1", From: "a@example.com", Recipients: []string{"bob@example.com", "bad@example.com"},
		Body: "7BIT", Listener: "submission", ReceivedAt: time.Now()}
	if err := spool.Put(ctx, env, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two deliveries and the DSN", func() bool { return len(ev.Deliveries()) >= 3 })
	got := map[string]queue.Report{}
	for _, d := range ev.Deliveries() {
		got[d.Rcpt] = d
	}
	if d := got["bob@example.com"]; d.Outcome != "delivered" || d.ID != "M1" || !d.Local || d.Time.IsZero() {
		t.Errorf("bob: %+v", d)
	}
	if d := got["bad@example.com"]; d.Outcome != "failed" || d.ID != "M1" || !strings.Contains(d.Err, "no such mailbox") {
		t.Errorf("bad: %+v", d)
	}
	act := ev.Activity(time.Now())
	if last := act[len(act)-1]; last.Delivered < 2 || last.Bounced != 1 {
		t.Errorf("this minute: %+v; want 2 or more delivered (bob, the DSN) and 1 bounced", last)
	}

	store := admission.NewMemoryStore()
	eng := admission.NewEngine(store, admissiontest.Abuse(func(o *admission.AbuseOptions) {
		o.IPBanAfter, o.AlertStrikes, o.FailDelay = 2, 1, 0
		o.Logger, o.OnBan, o.OnAlert = silent, ev.Ban, ev.Alert
	}))
	now := time.Now()
	addr := netip.MustParseAddr("192.0.2.66")
	for range 3 {
		eng.AuthResult(ctx, admission.AuthOutcome{Remote: addr, Username: "alice@example.com", Mech: "PLAIN", Now: now})
	}
	as := ev.Anomalies(now.Add(-time.Hour))
	if len(as) != 2 || as[0].Event != "alert" || as[0].Kind != "bruteforce" || as[1].Event != "ban" ||
		as[1].Subject != "192.0.2.66/32" || as[1].Strikes != 1 || as[1].Reason == "" {
		t.Errorf("anomalies: %+v", as)
	}
	if as := ev.Anomalies(time.Now().Add(time.Minute)); len(as) != 0 {
		t.Errorf("anomalies in the future: %+v", as)
	}
}

// TestEventsRing keeps the last n, newest first.
func TestEventsRing(t *testing.T) {
	t.Parallel()
	ev := NewEvents(3)
	for _, id := range []string{"A", "B", "C", "D", "E"} {
		ev.Delivery(queue.Report{ID: id, Rcpt: "r@x", Outcome: queue.OutcomeDelivered, RemoteMTA: "mx.example"})
	}
	var ids []string
	for _, d := range ev.Deliveries() {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, "") != "EDC" {
		t.Errorf("ring: %v", ids)
	}
	if d := ev.Deliveries()[0]; d.Local || d.RemoteMTA != "mx.example" || d.Time.IsZero() {
		t.Errorf("delivery: %+v", d)
	}
}

// TestActivity counts per minute over the last hour: a minute an hour
// old is dropped, an empty minute reads zero, and an event older than
// the hour kept changes nothing.
func TestActivity(t *testing.T) {
	t.Parallel()
	ev := NewEvents(10)
	t0 := time.Date(2030, 1, 2, 10, 0, 30, 0, time.UTC)
	ev.Accepted(t0)
	ev.Accepted(t0.Add(10 * time.Second))
	ev.Delivery(queue.Report{Time: t0.Add(20 * time.Second), Outcome: queue.OutcomeDelivered})
	ev.Delivery(queue.Report{Time: t0.Add(5 * time.Minute), Outcome: queue.OutcomeDeferred})
	ev.Delivery(queue.Report{Time: t0.Add(59 * time.Minute), Outcome: queue.OutcomeFailed})

	act := ev.Activity(t0.Add(59 * time.Minute))
	if len(act) != 60 {
		t.Fatalf("%d minutes", len(act))
	}
	if m := act[0]; !m.Start.Equal(t0.Truncate(time.Minute)) || m.Accepted != 2 || m.Delivered != 1 {
		t.Errorf("first minute %+v", m)
	}
	if m := act[5]; m.Deferred != 1 || m.Accepted != 0 {
		t.Errorf("minute 5 %+v", m)
	}
	if m := act[59]; m.Bounced != 1 {
		t.Errorf("last minute %+v", m)
	}
	// An hour later the first minute's slot is reused.
	ev.Accepted(t0.Add(60 * time.Minute))
	act = ev.Activity(t0.Add(60 * time.Minute))
	if m := act[59]; m.Accepted != 1 || m.Delivered != 0 {
		t.Errorf("the slot reused: %+v", m)
	}
	if m := act[0]; !m.Start.Equal(t0.Truncate(time.Minute).Add(time.Minute)) || m.Accepted+m.Delivered != 0 {
		t.Errorf("oldest minute now %+v", m)
	}
	ev.Accepted(t0) // older than the hour kept
	if m := ev.Activity(t0.Add(60 * time.Minute))[59]; m.Accepted != 1 {
		t.Errorf("a late event from an hour ago counted: %+v", m)
	}
}
