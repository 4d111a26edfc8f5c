package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// fakeRemote is a BatchDeliverer that records its calls and answers by
// a function of the recipient and the attempt number (1-based, per
// recipient).
type fakeRemote struct {
	mu     sync.Mutex
	calls  [][]string     // rcpts of each call
	tries  map[string]int // per recipient
	answer func(rcpt string, try int) Outcome
	delay  time.Duration
	active atomic.Int32
	peak   atomic.Int32
}

func (f *fakeRemote) DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries == nil {
		f.tries = map[string]int{}
	}
	f.calls = append(f.calls, slices.Clone(rcpts))
	var out []Outcome
	for _, r := range rcpts {
		f.tries[r]++
		o := Outcome{Rcpt: r, RemoteMTA: "mx." + domainOf(r), Status: "2.0.0"}
		if f.answer != nil {
			o = f.answer(r, f.tries[r])
		}
		o.Rcpt = r
		out = append(out, o)
	}
	return out
}

func (f *fakeRemote) snapshot() ([][]string, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tries := map[string]int{}
	for k, v := range f.tries {
		tries[k] = v
	}
	return slices.Clone(f.calls), tries
}

func tempFail(r string) Outcome {
	return Outcome{Err: errors.New("451 4.3.0 try later"), Status: "4.3.0",
		Diagnostic: "smtp; 451 4.3.0 try later", RemoteMTA: "mx." + domainOf(r)}
}

func permFail(r string) Outcome {
	return Outcome{Err: Permanent(errors.New("550 5.1.1 user unknown")), Status: "5.1.1",
		Diagnostic: "smtp; 550 5.1.1 <" + r + ">: user unknown", RemoteMTA: "mx." + domainOf(r)}
}

// localSink is a Local deliverer that keeps what it got.
type localSink struct {
	mu   sync.Mutex
	msgs map[string][][]byte // rcpt -> messages
}

func (l *localSink) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msgs == nil {
		l.msgs = map[string][][]byte{}
	}
	l.msgs[rcpt] = append(l.msgs[rcpt], spooltest.Bytes(msg))
	return nil
}

func (l *localSink) get(rcpt string) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs[rcpt])
}

// runFor starts a Runner on s with opts until the test ends; it returns
// the Runner and a stop function.
func runFor(t *testing.T, s *spool.Spool, opts RunnerOptions) (*Runner, func()) {
	t.Helper()
	if opts.Local == nil {
		opts.Local = &localSink{}
	}
	if opts.IsLocal == nil {
		opts.IsLocal = isLocal
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.Hostname == "" {
		opts.Hostname = "mail.example.net"
	}
	r := NewRunner(s, opts)
	return r, run(t, r)
}

func stateOf(t *testing.T, s *spool.Spool, id, rcpt string) spool.RecipientState {
	t.Helper()
	it, err := s.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range it.Recipients {
		if r.Addr == rcpt {
			return r.State
		}
	}
	t.Fatalf("%s: no recipient %s", id, rcpt)
	return spool.RecipientState{}
}

// dsns returns the DSNs in the spool (messages from the null sender).
func dsns(t *testing.T, s *spool.Spool) [][]byte {
	t.Helper()
	var out [][]byte
	for _, it := range s.List() {
		if it.From != "" {
			continue
		}
		_, data, err := s.Get(it.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// fastPolicy retries after a few milliseconds and never warns.
var fastPolicy = RetryPolicy{First: 5 * time.Millisecond, Max: 20 * time.Millisecond, GiveUp: time.Hour}

// Three domains are three batches, each retried on its own schedule; the
// message is done when the last recipient is.
func TestThreeDomainsThreeBatches(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	remote := &fakeRemote{answer: func(r string, try int) Outcome {
		switch {
		case domainOf(r) == "b.example" && try < 3:
			return tempFail(r)
		case domainOf(r) == "c.example" && try < 2:
			return tempFail(r)
		}
		return Outcome{RemoteMTA: "mx." + domainOf(r), Status: "2.0.0"}
	}}
	rcpts := []string{"a1@a.example", "b1@b.example", "c1@c.example", "b2@B.example", "l@local.test"}
	id := putNow(t, s, 500, rcpts...)
	var sawLive, checked atomic.Bool
	runFor(t, s, RunnerOptions{RemoteBatch: BatchDelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
		if _, tries := remote.snapshot(); slices.Contains(rcpts, "b1@b.example") && tries["b1@b.example"] == 2 {
			// Before b's last, successful, attempt the message is still live.
			sawLive.Store(live(s, id))
			checked.Store(true)
		}
		return remote.DeliverBatch(ctx, env, rcpts, msg)
	}), Policy: fastPolicy})
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	if !checked.Load() || !sawLive.Load() {
		t.Error("message left the queue before its last recipient was done")
	}
	calls, tries := remote.snapshot()
	for _, c := range calls {
		d := domainOf(c[0])
		for _, r := range c {
			if domainOf(r) != d {
				t.Errorf("one batch for two domains: %v", c)
			}
		}
	}
	if got := map[string]int{"a1@a.example": 1, "c1@c.example": 2, "b1@b.example": 3, "b2@B.example": 3}; !mapsEqual(tries, got) {
		t.Errorf("attempts per recipient %v, want %v", tries, got)
	}
	if n := len(calls); n != 6 { // a once, c twice, b three times (both in one batch)
		t.Errorf("%d DeliverBatch calls, want 6: %v", n, calls)
	}
	for _, r := range rcpts {
		if st := stateOf(t, s, id, r); st.Status != spool.StatusDelivered {
			t.Errorf("%s: %v", r, st.Status)
		}
	}
	if st := stateOf(t, s, id, "b1@b.example"); st.Attempts != 3 || st.RemoteMTA != "mx.b.example" || st.Code != "2.0.0" {
		t.Errorf("b1 state %+v", st)
	}
	if len(dsns(t, s)) != 0 {
		t.Error("a DSN for a message delivered in the end")
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPermanentFailureBouncesAtOnce(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	remote := &fakeRemote{answer: func(r string, try int) Outcome {
		if strings.HasPrefix(r, "gone") {
			return permFail(r)
		}
		return Outcome{RemoteMTA: "mx." + domainOf(r)}
	}}
	sender := &localSink{}
	id := spooltest.ID()
	env := spooltest.Env(id, "gone@x.example", "ok@x.example", "gone2@y.example")
	env.From = "alice@local.test" // the DSN comes back here
	env.ReceivedAt = time.Now()
	mustPut(t, s, env, spooltest.Data(id, 300))
	m := NewMetrics(nil)
	runFor(t, s, RunnerOptions{Metrics: m, RemoteBatch: remote, Local: sender, Policy: fastPolicy})
	testkit.WaitFor(t, "DSN delivered", func() bool { return len(sender.get("alice@local.test")) == 1 })
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	_, tries := remote.snapshot()
	if tries["gone@x.example"] != 1 || tries["gone2@y.example"] != 1 {
		t.Errorf("a permanent failure was retried: %v", tries)
	}
	if st := stateOf(t, s, id, "gone@x.example"); st.Status != spool.StatusFailed || st.Code != "5.1.1" {
		t.Errorf("gone: %+v", st)
	}
	dsn := string(sender.get("alice@local.test")[0])
	for _, want := range []string{"Final-Recipient: rfc822; gone@x.example", "Final-Recipient: rfc822; gone2@y.example",
		"Status: 5.1.1", "Remote-MTA: dns; mx.x.example", "Diagnostic-Code: smtp; 550 5.1.1 <gone@x.example>: user unknown",
		"Action: failed", "X-Postern-Queue-ID: " + id, "Subject: " + id} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(dsn, "Final-Recipient: rfc822; ok@x.example") {
		t.Error("DSN reports the delivered recipient")
	}
	if strings.Count(dsn, "Final-Recipient:") != 2 {
		t.Errorf("one DSN for both failures expected:\n%s", dsn)
	}
	if got := counterValue(m.Bounces.WithLabelValues("permanent")); got != 2 {
		t.Errorf("bounces{permanent} grew by %v, want 2", got)
	}
}

func TestExpiryBounces(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	received := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	clock := received.Add(5*24*time.Hour + time.Minute) // past GiveUp
	remote := &fakeRemote{answer: func(r string, _ int) Outcome { return tempFail(r) }}
	sender := &localSink{}
	id := spooltest.ID()
	env := spooltest.Env(id, "late@x.example")
	env.From = "alice@local.test"
	env.ReceivedAt = received
	mustPut(t, s, env, spooltest.Data(id, 300))
	m := NewMetrics(nil)
	runFor(t, s, RunnerOptions{Metrics: m, RemoteBatch: remote, Local: sender, Now: func() time.Time { return clock }})
	testkit.WaitFor(t, "DSN delivered", func() bool { return len(sender.get("alice@local.test")) == 1 })
	// The DSN is spooled before the recipient is marked failed (so a
	// crash between the two repeats the bounce rather than losing it):
	// wait for the mark too.
	testkit.WaitFor(t, "recipient marked", func() bool { return stateOf(t, s, id, "late@x.example").Status != spool.StatusPending })
	st := stateOf(t, s, id, "late@x.example")
	if st.Status != spool.StatusFailed || st.Attempts != 1 || st.LastError == "" {
		t.Errorf("state %+v", st)
	}
	dsn := string(sender.get("alice@local.test")[0])
	for _, want := range []string{"Action: failed", "Status: 4.4.7", "Diagnostic-Code: smtp; 451 4.3.0 try later",
		"Remote-MTA: dns; mx.x.example", "Date: Wed, 25 Nov 2026 08:01:00 +0000"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if got := counterValue(m.Bounces.WithLabelValues("expired")); got != 1 {
		t.Errorf("bounces{expired} grew by %v", got)
	}
}

// A temporary failure before GiveUp schedules the retry by the policy,
// with the injected clock and random numbers.
func TestRetryScheduleRecorded(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	clock := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	id := spooltest.ID()
	env := spooltest.Env(id, "r@x.example")
	env.ReceivedAt = clock.Add(-time.Minute)
	mustPut(t, s, env, spooltest.Data(id, 100))
	remote := &fakeRemote{answer: func(r string, _ int) Outcome { return tempFail(r) }}
	m := NewMetrics(nil)
	runFor(t, s, RunnerOptions{Metrics: m, RemoteBatch: remote, Now: func() time.Time { return clock },
		Rand: func() float64 { return 0.25 }})
	testkit.WaitFor(t, "deferred", func() bool { return stateOf(t, s, id, "r@x.example").Status == spool.StatusDeferred })
	st := stateOf(t, s, id, "r@x.example")
	// First retry: 1 minute - 20% * 0.5 = 54 s.
	if want := clock.Add(54 * time.Second); !st.NextAttempt.Equal(want) || st.Attempts != 1 || st.Code != "4.3.0" {
		t.Errorf("state %+v, want next attempt %v", st, want)
	}
	if got := counterValue(m.Retries); got != 1 {
		t.Errorf("retries grew by %v", got)
	}
}

// The runner sleeps until the next attempt is due (no polling), and
// Retry makes it due now.
func TestNoBusyLoopAndRetryNow(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	id := putNow(t, s, 100, "r@x.example")
	remote := &fakeRemote{answer: func(r string, try int) Outcome {
		if try == 1 {
			return tempFail(r)
		}
		return Outcome{}
	}}
	r, _ := runFor(t, s, RunnerOptions{RemoteBatch: remote, Policy: RetryPolicy{First: time.Hour}})
	testkit.WaitFor(t, "deferred", func() bool { return stateOf(t, s, id, "r@x.example").Status == spool.StatusDeferred })
	testkit.WaitFor(t, "the retry scheduled", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.sched.earliest()
		return ok
	})
	if calls, _ := remote.snapshot(); len(calls) != 1 {
		t.Fatalf("%d attempts before the one-hour backoff ended", len(calls))
	}
	r.mu.Lock()
	at, ok := r.sched.earliest()
	r.mu.Unlock()
	if !ok || time.Until(at) < 40*time.Minute {
		t.Errorf("timer set for %v (ok %v), want in about an hour", at, ok)
	}
	if err := r.Retry(id); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "delivered after Retry", func() bool { return !live(s, id) })
	if err := r.Retry(id); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Retry of a done message: %v", err)
	}
	if err := r.Retry("nosuchid"); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Retry of an unknown id: %v", err)
	}
}

func TestDelayWarningOnce(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	offset := 5 * time.Hour // the message is five hours old
	received := time.Now()
	id := spooltest.ID()
	env := spooltest.Env(id, "slow@x.example", "slow2@x.example")
	env.From = "alice@local.test"
	env.ReceivedAt = received
	mustPut(t, s, env, spooltest.Data(id, 100))
	remote := &fakeRemote{answer: func(r string, _ int) Outcome { return tempFail(r) }}
	sender := &localSink{}
	runFor(t, s, RunnerOptions{RemoteBatch: remote, Local: sender,
		Policy: RetryPolicy{First: 5 * time.Millisecond, Max: 10 * time.Millisecond, DelayWarning: 4 * time.Hour},
		Now:    func() time.Time { return time.Now().Add(offset) }})
	testkit.WaitFor(t, "a warning", func() bool { return len(sender.get("alice@local.test")) > 0 })
	testkit.WaitFor(t, "four attempts", func() bool { _, tries := remote.snapshot(); return tries["slow@x.example"] >= 4 })
	got := sender.get("alice@local.test")
	if len(got) != 1 {
		t.Fatalf("%d delay warnings, want 1", len(got))
	}
	dsn := string(got[0])
	for _, want := range []string{"Action: delayed", "Status: 4.3.0", "Will-Retry-Until: ", "Subject: Delayed Mail",
		"Final-Recipient: rfc822; slow@x.example", "Final-Recipient: rfc822; slow2@x.example"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("warning lacks %q", want)
		}
	}
	if st := stateOf(t, s, id, "slow@x.example"); !st.Warned || st.Status != spool.StatusDeferred {
		t.Errorf("state %+v", st)
	}
	if !live(s, id) {
		t.Error("a warned message left the queue")
	}
}

func TestNullSenderBounceDropped(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	logs := &testkit.SyncBuffer{}
	id := spooltest.ID()
	env := spooltest.Env(id, "gone@x.example")
	env.From = ""
	mustPut(t, s, env, spooltest.Data(id, 100))
	remote := &fakeRemote{answer: func(r string, _ int) Outcome { return permFail(r) }}
	m := NewMetrics(nil)
	runFor(t, s, RunnerOptions{Metrics: m, RemoteBatch: remote, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	if n := len(s.List()); n != 0 {
		t.Errorf("%d messages queued: a bounce of a bounce was sent", n)
	}
	if !strings.Contains(logs.String(), "bounce of a bounce dropped") {
		t.Errorf("drop not logged:\n%s", logs)
	}
	if got := counterValue(m.DSNs.WithLabelValues("dropped")); got != 1 {
		t.Errorf("dsns{dropped} grew by %v", got)
	}
}

// messageWithReceived returns a message with n Received fields.
func messageWithReceived(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Received: from hop%d.example by hop%d.example;\r\n Fri, 27 Nov 2026 08:00:00 +0000\r\n", i, i+1)
	}
	b.WriteString("Subject: round and round\r\n\r\nbody\r\nReceived: not a header\r\n")
	return []byte(b.String())
}

func TestLoopGuard(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sender := &localSink{}
	remote := &fakeRemote{}
	loop, ok := spooltest.ID(), spooltest.ID()
	env := spooltest.Env(loop, "x@x.example", "l@local.test")
	env.From = "alice@local.test"
	mustPut(t, s, env, messageWithReceived(51))
	env2 := spooltest.Env(ok, "y@x.example")
	mustPut(t, s, env2, messageWithReceived(50))
	runFor(t, s, RunnerOptions{RemoteBatch: remote, Local: sender})
	testkit.WaitFor(t, "DSN delivered", func() bool { return len(sender.get("alice@local.test")) == 1 })
	testkit.WaitFor(t, "both done", func() bool { return !live(s, loop) && !live(s, ok) })
	if _, tries := remote.snapshot(); tries["x@x.example"] != 0 || tries["y@x.example"] != 1 {
		t.Errorf("remote attempts %v: the looping message was delivered or the other was not", tries)
	}
	if len(sender.get("l@local.test")) != 0 {
		t.Error("the looping message was delivered locally")
	}
	for _, r := range []string{"x@x.example", "l@local.test"} {
		if st := stateOf(t, s, loop, r); st.Status != spool.StatusFailed || st.Code != "5.4.6" {
			t.Errorf("%s: %+v", r, st)
		}
	}
	dsn := string(sender.get("alice@local.test")[0])
	if !strings.Contains(dsn, "Status: 5.4.6") || !strings.Contains(dsn, "Routing loop detected (51 Received header fields)") {
		t.Errorf("DSN:\n%s", dsn)
	}
}

func TestRemoteConcurrencyBound(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	remote := &fakeRemote{delay: 30 * time.Millisecond}
	var ids []string
	for i := range 8 {
		id := spooltest.ID()
		ids = append(ids, id)
		mustPut(t, s, spooltest.Env(id, fmt.Sprintf("u@d%d.example", i)), spooltest.Data(id, 100))
	}
	runFor(t, s, RunnerOptions{RemoteBatch: remote, RemoteConcurrency: 3, Workers: 8})
	testkit.WaitFor(t, "all delivered", func() bool { return len(s.List()) == 0 })
	if p := remote.peak.Load(); p != 3 {
		t.Errorf("peak remote deliveries in flight %d, want 3", p)
	}
}

// The single-recipient Remote deliverer of before still works.
func TestRemoteDelivererAdapter(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	var got sync.Map
	id := spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "a@x.example", "b@x.example"), spooltest.Data(id, 100))
	runFor(t, s, RunnerOptions{Remote: DelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpt string, _ *smtp.Message) error {
		got.Store(rcpt, true)
		return nil
	})})
	testkit.WaitFor(t, "delivered", func() bool { return !live(s, id) })
	for _, r := range []string{"a@x.example", "b@x.example"} {
		if _, ok := got.Load(r); !ok {
			t.Errorf("%s not delivered", r)
		}
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// A remote server's multi-line reply or a strange host name cannot add
// lines to the DSN.
func TestDSNFieldsFromRemoteAreOneLine(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sender := &localSink{}
	id := spooltest.ID()
	env := spooltest.Env(id, "x@x.example")
	env.From = "alice@local.test"
	mustPut(t, s, env, spooltest.Data(id, 100))
	remote := &fakeRemote{answer: func(r string, _ int) Outcome {
		return Outcome{Err: Permanent(errors.New("550")), Status: "5.1.1\r\nX-Evil: 1",
			Diagnostic: "smtp; 550-5.1.1 first\r\n550 5.1.1 Injected: yes", RemoteMTA: "mx.x.example\r\nX-Evil: 2"}
	}}
	runFor(t, s, RunnerOptions{RemoteBatch: remote, Local: sender})
	testkit.WaitFor(t, "DSN delivered", func() bool { return len(sender.get("alice@local.test")) == 1 })
	dsn := string(sender.get("alice@local.test")[0])
	if strings.Contains(dsn, "\r\nX-Evil") || strings.Contains(dsn, "\r\n550 5.1.1 Injected") {
		t.Errorf("remote text broke the DSN's lines:\n%s", dsn)
	}
	for _, want := range []string{"Diagnostic-Code: smtp; 550-5.1.1 first 550 5.1.1 Injected: yes\r\n", "Status: 5.0.0\r\n",
		"Remote-MTA: dns; mx.x.example X-Evil: 2\r\n"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}

func TestOldestGauge(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, age := range []time.Duration{time.Minute, 3 * time.Hour, time.Hour} {
		id := spooltest.ID()
		env := spooltest.Env(id, "x@x.example")
		env.ReceivedAt = now.Add(-age)
		mustPut(t, s, env, []byte("x\r\n"))
	}
	r := NewRunner(s, RunnerOptions{Local: &localSink{}, IsLocal: isLocal, Now: func() time.Time { return now }})
	r.updateGauges()
	var m dto.Metric
	r.opts.Metrics.OldestSeconds.Write(&m)
	if got := m.GetGauge().GetValue(); got != (3 * time.Hour).Seconds() {
		t.Errorf("oldest = %v s, want %v", got, (3 * time.Hour).Seconds())
	}
}

// A delete while an attempt is in flight is not undone by its outcome,
// not even after a restart.
func TestDeleteDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	id := spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "x@x.example"), spooltest.Data(id, 100))
	inFlight, release := make(chan struct{}), make(chan struct{})
	r, stop := runFor(t, s, RunnerOptions{RemoteBatch: BatchDelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
		close(inFlight)
		<-release
		return []Outcome{{Rcpt: rcpts[0], Err: errors.New("451 later")}}
	})})
	<-inFlight
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	close(release)
	testkit.WaitFor(t, "the pass to end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.state[id] == 0
	})
	stop()
	if st := stateOf(t, s, id, "x@x.example"); st.Status != spool.StatusRemoved {
		t.Errorf("after the attempt: %v, want removed", st.Status)
	}
	s.Close()
	s = openTest(t, dir, 0)
	defer s.Close()
	if live(s, id) {
		t.Error("deleted message back in the queue after a restart")
	}
}

// The runner groups remote recipients by the addrkey key of their domain
// (issue 12 §8): strings.ToLower put "b@wor\u212A.test" (a KELVIN SIGN,
// no valid name) in work.test's batch, and the deliverer, which plans
// for a batch's first recipient, would have taken it to work.test. A
// U-label and its A-label are one domain.
func TestBatchesByDomainKey(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	remote := &fakeRemote{}
	id := putNow(t, s, 500, "a@work.test", "b@wor\u212A.test", "c@B\u00fccher.example", "d@xn--bcher-kva.example", "e@WORK.test")
	runFor(t, s, RunnerOptions{RemoteBatch: remote, Policy: fastPolicy})
	testkit.WaitFor(t, "message done", func() bool { return !live(s, id) })
	calls, _ := remote.snapshot()
	var got []string
	for _, c := range calls {
		got = append(got, strings.Join(c, " "))
	}
	slices.Sort(got)
	want := []string{"a@work.test e@WORK.test", "b@wor\u212A.test", "c@B\u00fccher.example d@xn--bcher-kva.example"}
	if !slices.Equal(got, want) {
		t.Errorf("batches %q, want %q", got, want)
	}
}
