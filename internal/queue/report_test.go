package queue

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// TestReports delivers one local and two remote recipients, one of them
// deferred, and checks that the observer gets one Report per attempt
// with what Postfix's status lines carry, and that the log lines say the
// same.
func TestReports(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	var reps []Report
	base := time.Unix(1_800_000_000, 0)
	var tick time.Duration
	var clockMu sync.Mutex
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		tick += time.Second
		return base.Add(10*time.Second + tick)
	}
	relay := Relay{Addr: "192.0.2.25:25", TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
		TLSVerification: "mta-sts", Connect: 300 * time.Millisecond, Transmit: 50 * time.Millisecond,
		Reply: "250 2.0.0 Ok: queued as 4Fq1x72W", RemoteID: "4Fq1x72W"}
	r := NewRunner(s, RunnerOptions{
		Local:   DelivererFunc(func(context.Context, *smtp.Envelope, string, *smtp.Message) error { return nil }),
		IsLocal: isLocal,
		RemoteBatch: BatchDelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpts []string, _ *smtp.Message) []Outcome {
			var out []Outcome
			for _, rc := range rcpts {
				o := Outcome{Rcpt: rc, RemoteMTA: "mx.example.org", Relay: relay}
				if strings.HasPrefix(rc, "bad") {
					o.Err, o.Status = Permanent(errors.New("550 no such user")), "5.1.1"
				}
				if strings.HasPrefix(rc, "slow") {
					o.Err, o.Status = errors.New("451 try later"), "4.7.1"
					o.Relay.Reply, o.Relay.RemoteID = "451 4.7.1 try later", ""
				}
				out = append(out, o)
			}
			return out
		}),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		Now:     now,
		Rand:    func() float64 { return 0.5 },
		Observe: func(rep Report) { mu.Lock(); reps = append(reps, rep); mu.Unlock() },
	})
	stop := run(t, r)
	env := spooltest.Env(spooltest.ID(), "bob@local.test", "carol@example.org", "slow@example.org", "bad@example.org")
	env.ReceivedAt = base
	mustPut(t, s, env, spooltest.Data(env.ID, 100))
	testkit.WaitFor(t, "4 reports", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, rep := range reps {
			if rep.ID == env.ID {
				n++
			}
		}
		return n == 4
	})
	stop()

	by := map[string]Report{}
	for _, rep := range reps {
		if rep.ID == env.ID {
			by[rep.Rcpt] = rep
		}
	}
	loc, rem, def := by["bob@local.test"], by["carol@example.org"], by["slow@example.org"]
	if loc.Outcome != OutcomeDelivered || !loc.Local || loc.ID != env.ID || loc.From != env.From ||
		loc.Attempt != 1 || loc.Status != "2.0.0" || loc.Delay <= loc.QueueWait || loc.QueueWait < 10*time.Second ||
		loc.Relay.Transmit <= 0 {
		t.Errorf("local report %+v", loc)
	}
	if rem.Outcome != OutcomeDelivered || rem.Local || rem.RemoteMTA != "mx.example.org" || rem.Relay != relay ||
		rem.Status != "2.0.0" || rem.Err != "" {
		t.Errorf("remote report %+v", rem)
	}
	if def.Outcome != OutcomeDeferred || def.Status != "4.7.1" || def.NextAttempt.IsZero() ||
		def.Err != "451 try later" || def.Relay.Reply != "451 4.7.1 try later" {
		t.Errorf("deferred report %+v", def)
	}
	if bad := by["bad@example.org"]; bad.Outcome != OutcomeFailed || bad.Reason != "permanent" || bad.Status != "5.1.1" {
		t.Errorf("failed report %+v", bad)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="queue: delivered" id=` + env.ID + ` rcpt=carol@example.org from=alice@example.com outcome=delivered local=false attempt=1 status=2.0.0 delay=`,
		`relay=mx.example.org relay_addr=192.0.2.25:25 tls=mta-sts tls_version="TLS 1.3" tls_cipher=TLS_AES_128_GCM_SHA256 reply="250 2.0.0 Ok: queued as 4Fq1x72W" remote_id=4Fq1x72W`,
		"delay_connect=300ms delay_transmit=50ms",
		`level=WARN msg="queue: delivery deferred" id=` + env.ID + ` rcpt=slow@example.org`,
		`status=4.7.1`, `err="451 try later"`,
		`msg="queue: delivery failed" id=` + env.ID + ` rcpt=bad@example.org`, `reason=permanent err="550 no such user"`,
		`msg="queue: delivered" id=` + env.ID + ` rcpt=bob@local.test from=alice@example.com outcome=delivered local=true`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
