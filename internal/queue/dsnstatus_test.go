package queue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// mailboxRefusal is a local delivery error that knows its DSN status, as
// delivery.LMTPError does for a mailbox server's reply.
type mailboxRefusal struct{}

func (mailboxRefusal) Error() string { return "lmtp: RCPT TO: 550 5.1.1 no such user" }
func (mailboxRefusal) DSNStatus() (string, string) {
	return "5.1.1", "smtp; 550 5.1.1 <bob@local.test> User doesn't exist"
}

// TestLocalFailureDSNStatus checks that a local recipient refused by the
// mailbox server bounces with the server's enhanced status code and
// reply, found anywhere in the error's chain, not 5.0.0.
func TestLocalFailureDSNStatus(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	sink := &localSink{}
	local := DelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
		if rcpt == "bob@local.test" {
			return Permanent(fmt.Errorf("%s: %w", rcpt, mailboxRefusal{}))
		}
		return sink.Deliver(ctx, env, rcpt, msg)
	})
	id := spooltest.ID()
	env := spooltest.Env(id, "bob@local.test")
	env.From = "alice@local.test"
	env.ReceivedAt = time.Now()
	mustPut(t, s, env, spooltest.Data(id, 300))
	runFor(t, s, RunnerOptions{Local: local, IsLocal: isLocal, Policy: fastPolicy})
	testkit.WaitFor(t, "DSN delivered", func() bool { return len(sink.get("alice@local.test")) == 1 })
	// The DSN is spooled before bob is marked failed (a crash between
	// repeats the bounce rather than losing it): wait for the mark.
	testkit.WaitFor(t, "bob marked failed", func() bool { return stateOf(t, s, id, "bob@local.test").Status == spool.StatusFailed })
	if st := stateOf(t, s, id, "bob@local.test"); st.Code != "5.1.1" {
		t.Errorf("bob: %+v, want failed with 5.1.1", st)
	}
	dsn := string(sink.get("alice@local.test")[0])
	for _, want := range []string{"Status: 5.1.1\r\n", "Diagnostic-Code: smtp; 550 5.1.1 <bob@local.test> User doesn't exist\r\n"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}
