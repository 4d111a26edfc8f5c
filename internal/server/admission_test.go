package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"postern/internal/admission/redisstore"
	"postern/internal/config"
	"postern/internal/testkit"
	"postern/internal/tlsconf/redistickets"
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
	a, err := newAdmission(cfg, config.Secrets{}, slog.New(slog.DiscardHandler), nil, partMetrics{})
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
	b, err := newAdmission(cfg, config.Secrets{}, slog.New(slog.DiscardHandler), nil, partMetrics{})
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
	if _, err := newAdmission(cfg, config.Secrets{}, slog.New(slog.DiscardHandler), nil, partMetrics{}); err == nil {
		t.Error("no error for an unreachable Redis")
	}
	cfg.Redis.Address = testkit.RedisAddr(t)
	cfg.Redis.KeyPrefix = "postern-test-serve:"
	a, err := newAdmission(cfg, config.Secrets{}, slog.New(slog.DiscardHandler), nil, partMetrics{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.store.(*redisstore.Store); !ok {
		t.Errorf("store is %T, want the Redis store", a.store)
	}
}

// TestRedisOneClient: [redis] password_file is read once, by the one
// rule of secret files (its first line), and the admission store and the
// TLS ticket keys share one client with that password. (The store used
// to read the whole file, the ticket keys its first line, each with a
// client of its own.)
func TestRedisOneClient(t *testing.T) {
	addr := testkit.RedisAddr(t)
	ctx := context.Background()
	root := redis.NewClient(&redis.Options{Addr: addr})
	defer root.Close()
	user := fmt.Sprintf("postern-test-%d", os.Getpid())
	if err := root.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">s3cret", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	defer root.Do(ctx, "ACL", "DELUSER", user)

	cfg := config.Dev(t.TempDir())
	cfg.Redis.Address, cfg.Redis.Username = addr, user
	cfg.Redis.KeyPrefix = fmt.Sprintf("postern-test-%d:", os.Getpid())
	cfg.Redis.PasswordFile = filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(cfg.Redis.PasswordFile, []byte("s3cret\r\nnot the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer root.Del(ctx, cfg.Redis.KeyPrefix+"tls:ticket-keys")
	sec, err := cfg.ReadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAdmission(cfg, sec, slog.New(slog.DiscardHandler), nil, partMetrics{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.store.Count(ctx, "k", time.Now()); err != nil {
		t.Fatalf("admission store: %v", err)
	}
	st, ok := ticketStore(cfg, a.redis).(*redistickets.Store)
	if !ok || st.Client != a.redis || a.redis == nil {
		t.Fatalf("ticket store %#v does not use the admission store's client", st)
	}
	if _, err := st.Rotate(ctx, time.Now(), time.Hour, 2); err != nil {
		t.Fatalf("ticket keys: %v", err)
	}
	if n := clientsOf(t, root, user); n != 1 {
		t.Errorf("%d connections as %s, want 1 (one client, one pooled connection)", n, user)
	}
}

// clientsOf counts the connections Redis has for user.
func clientsOf(t *testing.T, root *redis.Client, user string) int {
	t.Helper()
	list, err := root.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, " user="+user+" ")
}
