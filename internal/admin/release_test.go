package admin

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"postern/internal/smtp"
)

// A held message is listed held with its reason, is not delivered, and
// is delivered once released; a message not held cannot be released.
func TestAdminRelease(t *testing.T) {
	f := newFixture(t)
	f.fail.Store(false)
	ctx := context.Background()
	const held, plain = "0000000000000000held", "000000000000000plain"
	env := &smtp.Envelope{ID: held, From: "alice@example.com", Recipients: []string{"bob@example.org"}, Body: "7BIT",
		AuthUser: "alice", Remote: netip.MustParseAddrPort("192.0.2.7:40000"), ReceivedAt: time.Now(),
		Hold: true, HoldReason: "send limit: messages per hour"}
	if err := f.spool.Put(ctx, env, []byte("Subject: held\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	f.put(t, plain, "alice@example.com", "carl@example.org")
	waitUntil(t, "the message not held delivered", func() bool { return f.calls.Load() == 1 })
	// Its outcome is recorded after the deliverer returns.
	waitUntil(t, "the message not held done", func() bool { return len(f.spool.List()) == 1 })

	msgs, err := f.client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != held || !msgs[0].Held || msgs[0].HoldReason != env.HoldReason ||
		msgs[0].Recipients[0].Status != "held" {
		t.Fatalf("list: %+v; want only %s, held for %q", msgs, held, env.HoldReason)
	}
	if err := f.client.Release(ctx, "nosuchmessage0000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("release of an unknown id: %v, want ErrNotFound", err)
	}
	if err := f.client.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the released message delivered", func() bool { return f.calls.Load() == 2 })
	waitUntil(t, "the queue empty", func() bool { return len(f.spool.List()) == 0 })

	// Not held (any more): 409, ErrNotHeld. A pending message does not
	// stay pending long with this runner, so hold off delivery first.
	f.fail.Store(true)
	f.put(t, "00000000000000000new", "alice@example.com", "dan@example.org")
	waitUntil(t, "the new message deferred", func() bool { return f.calls.Load() == 3 })
	if err := f.client.Release(ctx, "00000000000000000new"); !errors.Is(err, ErrNotHeld) {
		t.Errorf("release of a message not held: %v, want ErrNotHeld", err)
	}
}

// A held message can be deleted: nothing is delivered, no bounce.
func TestAdminDeleteHeld(t *testing.T) {
	f := newFixture(t)
	f.fail.Store(false)
	ctx := context.Background()
	const held = "0000000000000000hel2"
	env := &smtp.Envelope{ID: held, From: "alice@example.com", Recipients: []string{"bob@example.org"}, Body: "7BIT",
		ReceivedAt: time.Now(), Hold: true, HoldReason: "send limit: recipients per hour"}
	if err := f.spool.Put(ctx, env, []byte("Subject: held\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.client.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	if n := len(f.spool.List()); n != 0 {
		t.Errorf("%d messages live after deleting the held one", n)
	}
	time.Sleep(20 * time.Millisecond)
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d deliveries of a deleted held message", n)
	}
}
