package tlsconf

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"
)

func TestTicketsResumeAcrossRotation(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(fmt.Sprintf("%x", v), func(t *testing.T) {
			certs, _ := newCerts(t)
			clk := &clock{testNow}
			ctx := context.Background()
			tk := NewTickets(TicketOptions{Now: clk.Now, Rotation: 12 * time.Hour, Keep: 3})
			srv := ServerConfig(certs, Policy{})
			if err := tk.Add(ctx, srv); err != nil {
				t.Fatal(err)
			}
			cli := client(certs)
			cli.MaxVersion = v
			cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			resumed := func() bool {
				t.Helper()
				cerr, serr, cs := handshake(t, srv, cli)
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				return cs.DidResume
			}
			if resumed() {
				t.Fatal("first connection resumed")
			}
			if !resumed() {
				t.Fatal("no resumption before rotation")
			}
			// The ticket the client holds was sealed with the key that is
			// now the previous one.
			clk.t = clk.t.Add(12*time.Hour + time.Second)
			if err := tk.Update(ctx); err != nil {
				t.Fatal(err)
			}
			if !resumed() {
				t.Fatal("no resumption with the previous key after a rotation")
			}
			// Past the window (the key that sealed it dropped), a full
			// handshake.
			cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			resumed()
			for range 3 {
				clk.t = clk.t.Add(12*time.Hour + time.Second)
				if err := tk.Update(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if resumed() {
				t.Fatal("resumed with a key past the window")
			}
		})
	}
}

func TestTicketsOff(t *testing.T) {
	t.Parallel()
	certs, _ := newCerts(t)
	tk := NewTickets(TicketOptions{Rotation: 12 * time.Hour})
	srv := ServerConfig(certs, Policy{SessionTicketsDisabled: true})
	if err := tk.Add(context.Background(), srv); err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cli := client(certs)
		cli.MaxVersion = v
		cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i := range 2 {
			cerr, serr, cs := handshake(t, srv, cli)
			if cerr != nil || serr != nil {
				t.Fatalf("client %v, server %v", cerr, serr)
			}
			if cs.DidResume {
				t.Fatalf("version %x, connection %d resumed with tickets off", v, i+1)
			}
		}
	}
}

func TestMemoryTicketKeys(t *testing.T) {
	t.Parallel()
	var m MemoryTicketKeys
	ctx := context.Background()
	k1, _ := m.Rotate(ctx, testNow, time.Hour, 2)
	k2, _ := m.Rotate(ctx, testNow.Add(30*time.Minute), time.Hour, 2)
	if len(k1) != 1 || len(k2) != 1 || k1[0] != k2[0] {
		t.Fatal("rotated early")
	}
	k3, _ := m.Rotate(ctx, testNow.Add(time.Hour), time.Hour, 2)
	if len(k3) != 2 || k3[1] != k1[0] || k3[0].Key == k1[0].Key {
		t.Fatalf("rotation: %v", k3)
	}
	k4, _ := m.Rotate(ctx, testNow.Add(2*time.Hour), time.Hour, 2)
	if len(k4) != 2 || k4[1] != k3[0] {
		t.Fatal("keep")
	}
}

// Rotation has no default here (Postern's configuration resolves it, in
// internal/config): as time.NewTicker, NewTickets refuses a Rotation
// that is not positive, rather than take 0 for a default.
func TestTicketsRotationRequired(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewTickets took a Rotation of 0")
		}
	}()
	NewTickets(TicketOptions{})
}
