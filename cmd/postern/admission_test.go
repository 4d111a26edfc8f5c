package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"postern/internal/admission/redisstore"
	"postern/internal/config"
)

// TestNewAdmission builds the admission state from a configuration: a
// listener's deny list, a cap of 0 (off) and a per-user send limit reach
// the gate and the limiter.
func TestNewAdmission(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.Admission.Trusted = nil
	cfg.Admission.MaxConnsPerIP = 0 // off
	cfg.Admission.IPRate = 0        // off
	cfg.Listeners[0].Deny = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cfg.SendLimits.Users = map[string]config.UserSendLimits{"alice": {MessagesPerHour: 1},
		"hal": {MessagesPerHour: 1, OverLimit: config.OverLimitHold}}
	a, err := newAdmission(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, now := context.Background(), time.Now()
	name := cfg.Listeners[0].Name
	if d, _ := a.gate.Admit(ctx, name, netip.MustParseAddr("192.0.2.1"), now); d.Allowed {
		t.Error("deny list not applied")
	}
	for i := 0; i < 50; i++ { // no per-address cap or rate (the prefix cap is 50)
		if d, _ := a.gate.Admit(ctx, name, netip.MustParseAddr("198.51.100.1"), now); !d.Allowed {
			t.Fatalf("connection %d refused: %s", i+1, d.Reason)
		}
	}
	if a.guard == nil {
		t.Error("abuse engine off by default")
	}
	if e := a.limiter.AllowMessage(ctx, "alice", 1, now); e != nil {
		t.Fatal(e)
	}
	if e := a.limiter.AllowMessage(ctx, "alice", 1, now); e == nil {
		t.Error("per-user limit not applied")
	}
	a.limiter.CheckMessage(ctx, "hal", 1, now)
	if v := a.limiter.CheckMessage(ctx, "hal", 1, now); !v.Hold {
		t.Errorf("over_limit = hold not applied: %+v", v)
	}
	if v := a.limiter.CheckMessage(ctx, "alice", 1, now); v.Hold {
		t.Errorf("alice (refuse) held: %+v", v)
	}
	cfg.Abuse.Enabled = false
	b, err := newAdmission(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.guard != nil {
		t.Error("abuse engine on with enabled = false")
	}
}

// TestNewAdmissionRedis uses the Redis store when [redis] is set (with
// POSTERN_TEST_REDIS), and fails the start when Redis does not answer.
func TestNewAdmissionRedis(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.Redis.Address = "127.0.0.1:1" // nothing listens there
	if _, err := newAdmission(cfg, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Error("no error for an unreachable Redis")
	}
	addr := os.Getenv("POSTERN_TEST_REDIS")
	if addr == "" {
		t.Skip("POSTERN_TEST_REDIS not set")
	}
	cfg.Redis.Address = addr
	cfg.Redis.KeyPrefix = "postern-test-serve:"
	a, err := newAdmission(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.store.(*redisstore.Store); !ok {
		t.Errorf("store is %T, want the Redis store", a.store)
	}
}
